//! `#[mp::job]`: registers a free function under a stable name so a worker
//! process can run it.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use crate::options::{Options, with_error};

/// Most arguments a job may take (the `Job` trait is implemented up to this arity).
const MAX_ARITY: usize = 12;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => with_error(item, error),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = Options::parse(args)?;
    let function: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[mp::job] goes on a free function: `fn name(args) -> T { .. }`",
        )
    })?;
    let arg_types = check(&function)?;
    Ok(generate(&options.krate(), &function, &arg_types))
}

/// Every misuse is an error pointing at the offending token; all are reported at once.
fn check(function: &ItemFn) -> syn::Result<Vec<Type>> {
    let sig = &function.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut fail =
        |span: proc_macro2::Span, message: &str| errors.push(syn::Error::new(span, message));

    if let Some(token) = &sig.constness {
        fail(
            token.span(),
            "a `const fn` cannot be an mp job: remove `const`",
        );
    }
    if let Some(token) = &sig.asyncness {
        fail(
            token.span(),
            "an `async fn` cannot be an mp job: a job runs to completion in another process; \
             make it a plain fn and block on async work inside it",
        );
    }
    if let Some(token) = &sig.unsafety {
        fail(
            token.span(),
            "an `unsafe fn` cannot be an mp job: a job is called by the runtime, which cannot \
             uphold its contract; make it safe and use `unsafe` blocks inside",
        );
    }
    if let Some(abi) = &sig.abi {
        fail(
            abi.span(),
            "an `extern` fn cannot be an mp job: remove the ABI",
        );
    }
    if !sig.generics.params.is_empty() {
        fail(
            sig.generics.params.span(),
            "a generic fn cannot be an mp job: the worker must know the concrete types; \
             write a non-generic wrapper for each type you need",
        );
    }
    if let Some(clause) = &sig.generics.where_clause {
        fail(
            clause.span(),
            "an mp job cannot have a `where` clause: it must not be generic",
        );
    }
    if let Some(variadic) = &sig.variadic {
        fail(variadic.span(), "a variadic fn cannot be an mp job");
    }
    if sig.inputs.len() > MAX_ARITY {
        let extra = sig
            .inputs
            .iter()
            .nth(MAX_ARITY)
            .map_or(sig.inputs.span(), Spanned::span);
        fail(
            extra,
            "an mp job takes at most 12 arguments: group them in a struct or tuple",
        );
    }
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => fail(
                receiver.span(),
                "a method cannot be an mp job: `self` cannot be sent to another process; \
                 write a free fn that takes the value as an argument",
            ),
            FnArg::Typed(typed) => {
                if let Some(message) = unsupported_type(&typed.ty, "argument") {
                    fail(typed.ty.span(), &message);
                }
                types.push((*typed.ty).clone());
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Some(message) = unsupported_type(ty, "return type")
    {
        fail(ty.span(), &message);
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(types),
        Some(mut first) => {
            errors.for_each(|e| first.combine(e));
            Err(first)
        }
    }
}

fn unsupported_type(ty: &Type, what: &str) -> Option<String> {
    match ty {
        Type::Reference(_) => Some(format!(
            "a reference {what} cannot cross processes: use an owned type \
             (for example `String` instead of `&str`, `Vec<T>` instead of `&[T]`)"
        )),
        Type::ImplTrait(_) => Some(format!(
            "an `impl Trait` {what} cannot be an mp job's: name a concrete serde type"
        )),
        Type::Paren(inner) => unsupported_type(&inner.elem, what),
        Type::Group(inner) => unsupported_type(&inner.elem, what),
        _ => None,
    }
}

fn generate(krate: &syn::Path, function: &ItemFn, arg_types: &[Type]) -> TokenStream {
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let names: Vec<_> = (0..arg_types.len())
        .map(|i| format_ident!("__mp_arg{}", i))
        .collect();
    let ret: Type = match &function.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let signature = format!(
        "fn({}) -> {}",
        arg_types
            .iter()
            .map(|t| t.to_token_stream().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        ret.to_token_stream()
    );
    let arg_checks = arg_types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: () = #krate::__private::assert_arg::<#ty>();
        }
    });
    let ret_check = quote_spanned! {ret.span()=>
        const _: () = #krate::__private::assert_return::<#ret>();
    };
    quote! {
        #function

        const _: () = {
            #(#arg_checks)*
            #ret_check

            fn __mp_type_id() -> #krate::__private::TypeId {
                #krate::__private::type_id_of_val(&#ident)
            }

            fn __mp_invoke(
                call: #krate::__private::Invocation<'_>,
            ) -> #krate::__private::Outcome {
                #krate::__private::invoke(call, |(#(#names,)*): (#(#arg_types,)*)| #ident(#(#names),*))
            }

            #[#krate::__private::linkme::distributed_slice(#krate::__private::JOBS)]
            #[linkme(crate = #krate::__private::linkme)]
            static __MP_JOB: #krate::__private::JobEntry = #krate::__private::JobEntry::new(
                ::core::concat!(::core::module_path!(), "::", #name),
                #signature,
                __mp_type_id,
                __mp_invoke,
            );

            // windows-gnu links with --gc-sections and keeps `.CRT$XC*` but not
            // linkme's section: a constructor that touches the entry keeps it alive.
            #[cfg(all(windows, target_env = "gnu"))]
            #[used]
            #[unsafe(link_section = ".CRT$XCU")]
            static __MP_KEEP: extern "C" fn() = {
                extern "C" fn __mp_keep() {
                    #krate::__private::black_box(&__MP_JOB);
                }
                __mp_keep
            };
        };
    }
}

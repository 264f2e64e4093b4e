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
    let function = match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Fn(function)) => function,
        Ok(other) => return Err(not_a_fn(&other)),
        Err(e) => {
            return Err(syn::Error::new(
                e.span(),
                "`#[mp::job]` goes on a free function: `fn name(args) -> T { .. }`",
            ));
        }
    };
    let arg_types = check(&function)?;
    Ok(generate(&options.krate(), &function, &arg_types))
}

/// `#[mp::job]` on an item that is not a function: name what it is, at its keyword.
fn not_a_fn(item: &syn::Item) -> syn::Error {
    let (what, span) = match item {
        syn::Item::Struct(i) => ("a struct", i.struct_token.span),
        syn::Item::Enum(i) => ("an enum", i.enum_token.span),
        syn::Item::Union(i) => ("a union", i.union_token.span),
        syn::Item::Impl(i) => ("an `impl` block", i.impl_token.span),
        syn::Item::Trait(i) => ("a trait", i.trait_token.span),
        syn::Item::Mod(i) => ("a module", i.mod_token.span),
        syn::Item::Static(i) => ("a static", i.static_token.span),
        syn::Item::Const(i) => ("a const", i.const_token.span),
        syn::Item::Type(i) => ("a type alias", i.type_token.span),
        syn::Item::Use(i) => ("a `use` item", i.use_token.span),
        other => ("this item", other.span()),
    };
    syn::Error::new(
        span,
        format!(
            "`#[mp::job]` goes on a free function `fn name(args) -> T {{ .. }}`, not on {what}"
        ),
    )
}

/// Every misuse is an error pointing at the offending tokens; all are reported at once.
fn check(function: &ItemFn) -> syn::Result<Vec<Type>> {
    let sig = &function.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut fail = |tokens: &dyn ToTokens, message: &str| {
        errors.push(syn::Error::new_spanned(tokens, message));
    };

    if let Some(token) = &sig.constness {
        fail(token, "a `const fn` cannot be an mp job: remove `const`");
    }
    if let Some(token) = &sig.asyncness {
        fail(
            token,
            "an `async fn` cannot be an mp job: a job runs to completion in another process; \
             make it a plain fn and block on async work inside it",
        );
    }
    if let Some(token) = &sig.unsafety {
        fail(
            token,
            "an `unsafe fn` cannot be an mp job: a job is called by the runtime, which cannot \
             uphold its contract; make it safe and use `unsafe` blocks inside",
        );
    }
    if let Some(abi) = &sig.abi {
        fail(
            abi,
            "an `extern` fn cannot be an mp job: remove the ABI; the runtime calls the job \
             as a Rust fn",
        );
    }
    if !sig.generics.params.is_empty() {
        fail(
            &sig.generics,
            "a generic fn cannot be an mp job: the worker must know the concrete types; \
             write a non-generic wrapper for each type you need",
        );
    }
    if let Some(clause) = &sig.generics.where_clause {
        fail(
            clause,
            "an mp job cannot have a `where` clause: a job is not generic; remove the clause",
        );
    }
    if let Some(variadic) = &sig.variadic {
        fail(variadic, "a variadic fn cannot be an mp job");
    }
    if sig.inputs.len() > MAX_ARITY {
        let extra: TokenStream = sig
            .inputs
            .iter()
            .skip(MAX_ARITY)
            .map(ToTokens::to_token_stream)
            .collect();
        fail(
            &extra,
            &format!(
                "an mp job takes at most {MAX_ARITY} arguments, this one takes {}: group them \
                 in a struct or a tuple",
                sig.inputs.len()
            ),
        );
    }
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => fail(
                receiver,
                "a method cannot be an mp job: `self` cannot be sent to another process; \
                 write a free fn that takes the value as an argument",
            ),
            FnArg::Typed(typed) => {
                if let Some(message) = unsupported_type(&typed.ty, "argument") {
                    fail(&typed.ty, &message);
                }
                types.push((*typed.ty).clone());
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Some(message) = unsupported_type(ty, "return type")
    {
        fail(ty, &message);
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
            "an `impl Trait` {what} cannot be part of an mp job: the worker must know the \
             concrete type; name a concrete serde type"
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
    let serde = quote!(#krate::__private::serde);
    let owned_serde = quote! {
        #serde::Serialize + #serde::de::DeserializeOwned + ::core::marker::Send + 'static
    };
    // Spanned at the user's type, so an error lands there.
    let arg_checks = arg_types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: () = __mp_arg::<#ty>();
        }
    });
    let ret_check = quote_spanned! {ret.span()=>
        const _: () = __mp_return::<#ret>();
    };
    quote! {
        #function

        const _: () = {
            // One error per type that is not an owned serde type, at that type.
            #[diagnostic::on_unimplemented(
                message = "`{Self}` cannot be an argument of an mp job: it is not an owned serde type",
                label = "not `Serialize + DeserializeOwned + Send + 'static`",
                note = "arguments are sent to another process: derive `serde::Serialize` and \
                        `serde::Deserialize` on your own types, or take an owned serde type instead"
            )]
            trait __MpArg {}
            #[diagnostic::do_not_recommend]
            impl<T: #owned_serde> __MpArg for T {}
            const fn __mp_arg<T: __MpArg>() {}

            #[diagnostic::on_unimplemented(
                message = "`{Self}` cannot be the return type of an mp job: it is not an owned serde type",
                label = "not `Serialize + DeserializeOwned + Send + 'static`",
                note = "the value is sent back from another process: derive `serde::Serialize` \
                        and `serde::Deserialize` on your own types, or return an owned serde type instead"
            )]
            trait __MpReturn {}
            #[diagnostic::do_not_recommend]
            impl<T: #owned_serde> __MpReturn for T {}
            const fn __mp_return<T: __MpReturn>() {}

            #(#arg_checks)*
            #ret_check

            fn __mp_type_id() -> #krate::__private::TypeId {
                #krate::__private::type_id_of_val(&#ident)
            }

            fn __mp_invoke(
                call: #krate::__private::Invocation<'_>,
            ) -> #krate::__private::Outcome {
                // Picked by autoref: `invoke` when the types are serde types; otherwise
                // the checks above have failed already and the fallback keeps the
                // same mistake from being reported again here.
                struct __MpTag<A, R>(::core::marker::PhantomData<fn(A) -> R>);
                trait __MpInvoke<A, R> {
                    fn __mp_run<F: ::core::ops::Fn(A) -> R>(
                        &self,
                        call: #krate::__private::Invocation<'_>,
                        job: F,
                    ) -> #krate::__private::Outcome;
                }
                impl<A: #serde::de::DeserializeOwned, R: #serde::Serialize> __MpInvoke<A, R>
                    for &__MpTag<A, R>
                {
                    fn __mp_run<F: ::core::ops::Fn(A) -> R>(
                        &self,
                        call: #krate::__private::Invocation<'_>,
                        job: F,
                    ) -> #krate::__private::Outcome {
                        #krate::__private::invoke(call, job)
                    }
                }
                #[allow(dead_code)]
                trait __MpNotSerde<A, R> {
                    fn __mp_run<F: ::core::ops::Fn(A) -> R>(
                        &self,
                        _call: #krate::__private::Invocation<'_>,
                        _job: F,
                    ) -> #krate::__private::Outcome {
                        ::core::unreachable!("a job whose types are not serde types does not compile")
                    }
                }
                impl<A, R> __MpNotSerde<A, R> for __MpTag<A, R> {}
                (&&__MpTag::<(#(#arg_types,)*), #ret>(::core::marker::PhantomData))
                    .__mp_run(call, |(#(#names,)*): (#(#arg_types,)*)| #ident(#(#names),*))
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

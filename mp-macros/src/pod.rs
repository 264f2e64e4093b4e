//! `#[derive(mp::Pod)]`: marks a `#[repr(C)]` struct whose fields are all
//! `Pod` as plain old data, so it can live in shared memory.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

use crate::options::Options;

pub(crate) fn expand(item: TokenStream) -> TokenStream {
    match syn::parse2::<DeriveInput>(item).and_then(|input| derive(&input)) {
        Ok(tokens) => tokens,
        Err(error) => error.into_compile_error(),
    }
}

fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors: Vec<syn::Error> = Vec::new();
    let options = parse_options(input, &mut errors);
    check_repr(input, &mut errors);

    let fields = match &input.data {
        Data::Struct(data) => Some(&data.fields),
        Data::Enum(data) => {
            errors.push(syn::Error::new(
                data.enum_token.span(),
                "#[derive(mp::Pod)] cannot go on an enum: not every bit pattern (zero in \
                 particular) is a valid variant; store the discriminant as an integer field",
            ));
            None
        }
        Data::Union(data) => {
            errors.push(syn::Error::new(
                data.union_token.span(),
                "#[derive(mp::Pod)] cannot go on a union: use a struct of `Pod` fields",
            ));
            None
        }
    };

    if let Some(error) = errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    }) {
        return Err(error);
    }
    let krate = options
        .map(|o| o.krate())
        .unwrap_or_else(|| syn::parse_quote!(::mp));
    let fields: Vec<&syn::Field> = match fields {
        Some(Fields::Named(named)) => named.named.iter().collect(),
        Some(Fields::Unnamed(unnamed)) => unnamed.unnamed.iter().collect(),
        Some(Fields::Unit) | None => Vec::new(),
    };

    let name = &input.ident;
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#krate::Pod));
    }
    let (impl_generics, type_generics, where_clause) = generics.split_for_impl();

    // One check per field, spanned on its type: the error names the field.
    let checks = fields.iter().map(|field| {
        let ty = &field.ty;
        quote_spanned! {ty.span()=> __mp_assert_pod::<#ty>(); }
    });

    Ok(quote! {
        const _: () = {
            #[allow(dead_code)]
            fn __mp_assert_pod<T: #krate::Pod>() {}

            #[allow(dead_code, clippy::extra_unused_type_parameters)]
            fn __mp_pod_fields #impl_generics () #where_clause {
                #(#checks)*
            }

            // SAFETY: `#[repr(C)]` (checked above) and every field is `Pod` (checked
            // by `__mp_pod_fields`), so the struct holds no pointers and all bytes
            // zero is a valid value.
            unsafe impl #impl_generics #krate::Pod for #name #type_generics #where_clause {}
        };
    })
}

/// `#[mp(crate = "path")]`, like the other macros' `crate` option.
fn parse_options(input: &DeriveInput, errors: &mut Vec<syn::Error>) -> Option<Options> {
    let mut found = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("mp")) {
        let parsed = attr
            .meta
            .require_list()
            .and_then(|list| Options::parse(list.tokens.clone()));
        match parsed {
            Ok(options) if found.is_none() => found = Some(options),
            Ok(_) => errors.push(syn::Error::new(
                attr.span(),
                "duplicate `#[mp(..)]` attribute",
            )),
            Err(e) => errors.push(e),
        }
    }
    found
}

/// The layout must be fixed by the type: `#[repr(C)]` or `#[repr(transparent)]`.
fn check_repr(input: &DeriveInput, errors: &mut Vec<syn::Error>) {
    let mut fixed = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("C") || meta.path.is_ident("transparent") {
                fixed = true;
            }
            // Skip the arguments of `align(N)` / `packed(N)`.
            if meta.input.peek(syn::token::Paren) {
                let args;
                syn::parenthesized!(args in meta.input);
                args.parse::<TokenStream>()?;
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if !fixed && !matches!(input.data, Data::Enum(_) | Data::Union(_)) {
        errors.push(syn::Error::new(
            input.ident.span(),
            format!(
                "#[derive(mp::Pod)] needs `#[repr(C)]` on `{}`: data shared between processes \
                 needs a layout fixed by the type, not chosen by the compiler",
                input.ident
            ),
        ));
    }
}

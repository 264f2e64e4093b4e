//! Options shared by the macros: `crate = "path"`.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;

/// Parsed macro options.
pub(crate) struct Options {
    krate: Option<(syn::Path, Span)>,
}

impl Options {
    /// Parses `crate = "..."`; every other key is an error naming the valid ones.
    pub(crate) fn parse(args: TokenStream) -> syn::Result<Options> {
        let mut options = Options { krate: None };
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                if options.krate.is_some() {
                    return Err(meta.error("duplicate `crate` option: give it once"));
                }
                let value: syn::LitStr = meta.value()?.parse()?;
                let path = value.parse::<syn::Path>().map_err(|_| {
                    syn::Error::new(
                        value.span(),
                        "`crate` must be a path, e.g. `crate = \"::mp\"`",
                    )
                })?;
                options.krate = Some((path, value.span()));
                Ok(())
            } else {
                let key = meta.path.to_token_stream().to_string().replace(' ', "");
                Err(syn::Error::new_spanned(
                    &meta.path,
                    format!("unknown option `{key}`: the only option is `crate = \"path\"`"),
                ))
            }
        });
        parser.parse2(args)?;
        Ok(options)
    }

    /// The path of the `mp` crate in generated code.
    pub(crate) fn krate(&self) -> syn::Path {
        match &self.krate {
            Some((path, _)) => path.clone(),
            None => syn::parse_quote!(::mp),
        }
    }
}

/// The user's item followed by the error, so the item does not vanish for the IDE.
pub(crate) fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let mut out = item;
    out.extend(error.into_compile_error());
    out
}

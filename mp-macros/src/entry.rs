//! `mp::main!` and `#[mp::entry]`: the entry guard, like Python's
//! `if __name__ == "__main__":`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;
use syn::spanned::Spanned;

use crate::options::{Options, with_error};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => with_error(item, error),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = Options::parse(args)?;
    let function: ItemFn = syn::parse2(item)
        .map_err(|e| syn::Error::new(e.span(), "the entry guard wraps `fn main() { .. }`"))?;
    let sig = &function.sig;
    if sig.ident != "main" {
        return Err(syn::Error::new(
            sig.ident.span(),
            format!(
                "the entry guard goes on `fn main`, not `fn {}`: rename it to `main`, the \
                 program's entry point",
                sig.ident
            ),
        ));
    }
    if let Some(token) = &sig.asyncness {
        return Err(syn::Error::new(
            token.span(),
            "the entry guard does not start an async runtime: keep `#[tokio::main]` (or \
             similar) and call `mp::init()` first thing in `main` instead",
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "`fn main` takes no arguments: read them with `std::env::args()`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "`fn main` cannot be generic: remove the generic parameters",
        ));
    }
    let krate = options.krate();
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            // In a worker this never returns; in the program it joins non-daemon
            // children and terminates daemon ones when main ends.
            let __mp_main_guard = #krate::__private::MainGuard::enter();
            #block
        }
    })
}

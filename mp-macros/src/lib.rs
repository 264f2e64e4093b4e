//! Procedural macros of [mp](https://docs.rs/mp): `#[mp::job]`, `mp::main!` and
//! `#[mp::entry]`. Use them through the `mp` crate.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod entry;
mod job;
mod options;
mod pod;

use proc_macro::TokenStream;

/// Makes a free function runnable in another process. See `mp::job`.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(args.into(), item.into()).into()
}

/// The entry guard around `fn main`. See `mp::main!`.
#[proc_macro]
pub fn main(item: TokenStream) -> TokenStream {
    entry::expand(proc_macro2::TokenStream::new(), item.into()).into()
}

/// The entry guard in attribute form. See `mp::entry`.
#[proc_macro_attribute]
pub fn entry(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(args.into(), item.into()).into()
}

/// Marks a `#[repr(C)]` struct of `Pod` fields as plain old data. See `mp::Pod`.
#[proc_macro_derive(Pod, attributes(mp))]
pub fn derive_pod(item: TokenStream) -> TokenStream {
    pod::expand(item.into()).into()
}

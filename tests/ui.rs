//! Compile-time behaviour of `#[mp::job]`, `mp::main!` and `#[mp::entry]`:
//! every misuse is a compile error pointing at the offending token, and the
//! supported forms compile and run.

#[test]
#[cfg_attr(
    windows,
    ignore = "trybuild runs cargo, which a Windows test binary under Wine cannot start"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}

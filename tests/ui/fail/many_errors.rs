// Every problem of one function is reported at once, and the function is still
// emitted, so its callers see no second wave of "cannot find function" errors.
#[mp::job]
async unsafe fn bad<T>(s: &str, t: T) -> &'static str {
    let _ = (s, t);
    ""
}

fn main() {
    // SAFETY: `bad` has no contract.
    let _ = unsafe { bad("x", 1u8) };
}

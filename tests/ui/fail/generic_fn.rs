#[mp::job]
fn identity<T>(x: T) -> T {
    x
}

fn main() {
    // The function is still emitted: no "cannot find function" below.
    assert_eq!(identity(1u8), 1);
}

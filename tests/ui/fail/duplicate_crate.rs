#[mp::job(crate = "::mp", crate = "::mp")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    assert_eq!(square(2), 4);
}

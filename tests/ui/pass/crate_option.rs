mod reexport {
    pub use mp as renamed;
}

#[mp::job(crate = "::mp")]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::job(crate = "crate::reexport::renamed")]
fn cube(x: u64) -> u64 {
    x * x * x
}

fn main() {
    assert_eq!(square(3), 9);
    assert_eq!(cube(2), 8);
}

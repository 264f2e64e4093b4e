#[mp::job]
unsafe fn read(x: u64) -> u64 {
    x
}

fn main() {
    // SAFETY: `read` has no contract.
    assert_eq!(unsafe { read(1) }, 1);
}

#[mp::job]
const fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    assert_eq!(double(2), 4);
}

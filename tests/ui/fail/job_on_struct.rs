#[mp::job]
struct Square {
    x: u64,
}

fn main() {
    let s = Square { x: 2 };
    assert_eq!(s.x, 2);
}

#[mp::job]
fn total(x: Vec<u64>) -> u64
where
    u64: Copy,
{
    x.iter().sum()
}

fn main() {
    assert_eq!(total(vec![1, 2]), 3);
}

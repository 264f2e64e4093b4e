#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::entry]
fn main() {
    assert!(!mp::current_process().is_worker());
    let squares: Vec<u64> = mp::pool(2).map(square, 0..5).expect("map");
    assert_eq!(squares, vec![0, 1, 4, 9, 16]);
}

#[mp::job]
fn answer() -> u64 {
    42
}

fn main() {
    assert_eq!(answer(), 42);
    let pool = mp::Pool::new(1).expect("pool");
    assert_eq!(pool.apply(answer, ()).expect("apply"), 42);
}

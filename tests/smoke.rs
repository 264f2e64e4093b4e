#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::job]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mp::job]
fn boom(x: u32) -> u32 {
    if x == 3 {
        panic!("bad input {x}")
    }
    x
}

#[test]
fn pool_map() {
    let pool = mp::Pool::new(2).unwrap();
    let v = pool.map(square, 0..10u64).unwrap();
    assert_eq!(v, vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    assert_eq!(pool.apply(add, (1, 2)).unwrap(), 3);
    let e = pool.map(boom, 0..10u32).unwrap_err();
    assert!(e.to_string().contains("bad input 3"), "{e}");
}

#[test]
fn process_join() {
    let p = mp::Process::spawn(square, (7,)).unwrap();
    assert_ne!(p.pid(), std::process::id());
    assert_eq!(p.join().unwrap(), 49);
}

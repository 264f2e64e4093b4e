//! A worker built from other code is refused at the handshake with a clear error.
//! (Its own test binary: it changes the environment that workers inherit.)

#[mp::job]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[test]
fn a_worker_from_another_build_is_refused() {
    // Only the worker side adds the salt to its registry fingerprint, exactly as a
    // binary with other jobs would differ.
    // SAFETY: this test binary has this single test, so no other thread reads the
    // environment concurrently.
    unsafe { std::env::set_var("MP_TEST_FINGERPRINT_SALT", "12345") };
    let err = mp::Pool::new(1).unwrap_err();
    match &err {
        mp::Error::WorkerStart { message } => {
            assert!(message.contains("built from different code"), "{message}")
        }
        other => panic!("expected WorkerStart, got {other:?}"),
    }
    let err = mp::Process::spawn(add, (1, 2)).unwrap_err();
    assert!(matches!(err, mp::Error::WorkerStart { .. }), "{err}");
    let lazy = mp::pool(1);
    assert!(matches!(
        lazy.apply(add, (1, 2)),
        Err(mp::Error::WorkerStart { .. })
    ));
    // SAFETY: as above.
    unsafe { std::env::remove_var("MP_TEST_FINGERPRINT_SALT") };
    assert_eq!(mp::Pool::new(1).unwrap().apply(add, (1, 2)).unwrap(), 3);
}

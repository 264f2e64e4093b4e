//! Oversized messages are a clear `Codec` error in both directions, never a crash.
//! (Its own test binary: the frame limit is process-wide.)

#[mp::job]
fn echo_len(data: Vec<u8>) -> usize {
    data.len()
}

#[mp::job]
fn make_big(len: usize) -> Vec<u8> {
    vec![7; len]
}

#[mp::job]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[test]
fn oversized_frames_are_codec_errors() {
    assert!(matches!(
        mp::set_max_frame_size(10),
        Err(mp::Error::InvalidArgument { .. })
    ));
    mp::set_max_frame_size(64 * 1024).unwrap();
    assert_eq!(mp::max_frame_size(), 64 * 1024);
    let pool = mp::Pool::new(1).unwrap();

    // Arguments too large: refused before sending.
    let err = pool.apply(echo_len, (vec![1u8; 100_000],)).unwrap_err();
    assert!(matches!(err, mp::Error::Codec(_)), "{err}");
    assert!(err.to_string().contains("maximum frame size"), "{err}");

    // A result too large: the worker reports it instead of sending it.
    let err = pool.apply(make_big, (200_000,)).unwrap_err();
    assert!(matches!(err, mp::Error::Codec(_)), "{err}");

    // Within the limit all is well, and the pool is still usable.
    assert_eq!(pool.apply(echo_len, (vec![1u8; 1000],)).unwrap(), 1000);
    assert_eq!(pool.apply(make_big, (1000,)).unwrap().len(), 1000);
    assert_eq!(pool.apply(add, (1, 2)).unwrap(), 3);

    let err = mp::Process::spawn(echo_len, (vec![1u8; 100_000],)).and_then(|p| p.join());
    assert!(matches!(err, Err(mp::Error::Codec(_))), "{err:?}");
}

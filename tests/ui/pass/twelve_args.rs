#[mp::job]
#[allow(clippy::too_many_arguments)]
fn twelve(
    a: u8,
    b: u16,
    c: u32,
    d: u64,
    e: i8,
    f: i16,
    g: i32,
    h: i64,
    i: String,
    j: Vec<u8>,
    k: (u8, bool),
    l: Option<char>,
) -> String {
    format!("{a} {b} {c} {d} {e} {f} {g} {h} {i} {j:?} {k:?} {l:?}")
}

fn main() {
    let expected = "1 2 3 4 -5 -6 -7 -8 nine [10] (11, true) Some('c')";
    let direct = twelve(
        1,
        2,
        3,
        4,
        -5,
        -6,
        -7,
        -8,
        "nine".into(),
        vec![10],
        (11, true),
        Some('c'),
    );
    assert_eq!(direct, expected);
}

struct Report {
    lines: u32,
}

#[mp::job]
fn report(lines: u32) -> Report {
    Report { lines }
}

fn main() {
    assert_eq!(report(1).lines, 1);
}

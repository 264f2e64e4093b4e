#[mp::job]
fn show(x: impl std::fmt::Display) -> String {
    x.to_string()
}

fn main() {
    assert_eq!(show(1), "1");
}

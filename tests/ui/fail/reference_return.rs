#[mp::job]
fn name() -> &'static str {
    "mp"
}

fn main() {
    assert_eq!(name(), "mp");
}

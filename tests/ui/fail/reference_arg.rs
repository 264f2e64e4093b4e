#[mp::job]
fn shout(s: &str) -> String {
    s.to_uppercase()
}

fn main() {
    assert_eq!(shout("a"), "A");
}

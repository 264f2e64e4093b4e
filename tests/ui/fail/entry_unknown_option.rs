#[mp::entry(flavor = "multi_thread")]
fn main() {}

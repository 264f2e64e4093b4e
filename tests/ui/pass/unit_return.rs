#[mp::job]
fn log(line: String) {
    std::hint::black_box(line);
}

#[mp::job]
fn explicit_unit(_x: u8) -> () {}

fn main() {
    log("hello".to_string());
    explicit_unit(1);
}

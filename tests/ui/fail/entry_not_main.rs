#[mp::entry]
fn run() {}

fn main() {
    run();
}

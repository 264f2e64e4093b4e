mp::main! {
    fn start() {
        println!("hello");
    }
}

fn main() {
    start();
}

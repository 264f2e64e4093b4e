mp::main! {
    async fn main() {
        println!("hello");
    }
}

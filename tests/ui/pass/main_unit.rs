mp::main! {
    fn main() {
        assert!(!mp::current_process().is_worker());
    }
}

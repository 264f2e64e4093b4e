struct Counter {
    n: u64,
}

impl Counter {
    #[mp::job]
    fn get(&self) -> u64 {
        self.n
    }
}

fn main() {
    assert_eq!(Counter { n: 1 }.get(), 1);
}

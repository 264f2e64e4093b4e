// An associated fn (no `self`) in an `impl` block: the macro cannot see that it
// is inside an `impl`, so the error comes from the generated items, which are
// not allowed there. Kept as a snapshot so a better message shows up as a diff.
struct Counter;

impl Counter {
    #[mp::job]
    fn make(n: u64) -> u64 {
        n
    }
}

fn main() {
    assert_eq!(Counter::make(1), 1);
}

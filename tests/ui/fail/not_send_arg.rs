use std::rc::Rc;

#[mp::job]
fn count(shared: Rc<Vec<u8>>) -> usize {
    shared.len()
}

fn main() {
    assert_eq!(count(Rc::new(vec![1])), 1);
}

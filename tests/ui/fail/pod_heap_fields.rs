// `Box`, `Vec` and `String` own heap memory that another process cannot see.

#[derive(Clone, mp::Pod)]
#[repr(C)]
struct Owned {
    boxed: Box<u64>,
    items: Vec<u8>,
    label: String,
}

fn main() {}

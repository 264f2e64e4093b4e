// A struct holding pointers is not plain old data: each field is an error.

#[derive(Clone, Copy, mp::Pod)]
#[repr(C)]
struct Borrowed {
    id: u32,
    name: &'static str,
    next: *const u8,
}

fn main() {}

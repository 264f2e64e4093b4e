// Without `#[repr(C)]` the compiler chooses the layout.

#[derive(Clone, Copy, mp::Pod)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Clone, Copy, mp::Pod)]
#[repr(packed)]
struct Packed {
    x: u8,
    y: u32,
}

fn main() {}

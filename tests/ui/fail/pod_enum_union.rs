// Enums and unions cannot be `Pod`.

#[derive(Clone, Copy, mp::Pod)]
#[repr(C)]
enum State {
    Idle,
    Busy,
}

#[derive(Clone, Copy, mp::Pod)]
#[repr(C)]
union Bits {
    f: f32,
    u: u32,
}

fn main() {}

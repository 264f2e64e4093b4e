// Every form `#[derive(mp::Pod)]` accepts, used in shared memory.

#[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
#[repr(C, align(16))]
struct Particle {
    at: Point,
    velocity: [f32; 3],
    alive: bool,
    tag: char,
    history: [[u8; 2]; 4],
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
#[repr(C)]
struct Pair<T: Copy, const N: usize>([T; N], T);

#[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
#[repr(transparent)]
struct Meters(f64);

#[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
#[repr(C)]
struct Unit;

mod renamed {
    pub use mp as runtime;
}

#[derive(Clone, Copy, mp::Pod)]
#[repr(C)]
#[mp(crate = "renamed::runtime")]
struct ViaPath {
    n: u64,
}

fn assert_pod<T: mp::Pod>() {}

fn main() -> mp::Result<()> {
    assert_pod::<Point>();
    assert_pod::<Particle>();
    assert_pod::<Pair<u16, 3>>();
    assert_pod::<Meters>();
    assert_pod::<Unit>();
    assert_pod::<ViaPath>();

    let p = mp::Value::new(Particle {
        at: Point { x: 1.0, y: 2.0 },
        velocity: [0.0; 3],
        alive: true,
        tag: 'p',
        history: [[0; 2]; 4],
    })?;
    p.lock()?.at.x += 1.0;
    assert_eq!(p.get()?.at, Point { x: 2.0, y: 2.0 });
    let a = mp::Array::from_slice(&[Pair([1u8, 2], 3), Pair([4, 5], 6)])?;
    assert_eq!(a.get(1)?, Pair([4, 5], 6));
    Ok(())
}

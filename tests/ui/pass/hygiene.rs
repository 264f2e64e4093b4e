// Generated code must not depend on names the user's module can shadow.
#![allow(dead_code, non_camel_case_types)]

struct PhantomData;
struct Option;
struct Result;
struct Vec;
trait Send {}
trait Fn {}
trait Serialize {}
trait Deserialize {}
trait DeserializeOwned {}
mod serde {}
mod linkme {}
type TypeId = ();

#[mp::job]
fn first(xs: std::vec::Vec<u32>) -> core::option::Option<u32> {
    xs.first().copied()
}

fn main() {
    // A job defined inside a function body.
    #[mp::job]
    fn local(x: u8) -> u8 {
        x + 1
    }

    let pool = mp::Pool::new(1).expect("pool");
    assert_eq!(pool.apply(first, (vec![3, 4],)).expect("apply"), Some(3));
    assert_eq!(pool.apply(local, (1,)).expect("apply"), 2);
}

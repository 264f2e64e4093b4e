mod outer {
    pub mod inner {
        #[mp::job]
        pub fn triple(x: i32) -> i32 {
            x * 3
        }

        #[mp::job]
        fn private_job(x: i32) -> i32 {
            x + 1
        }

        pub fn call_private(x: i32) -> i32 {
            private_job(x)
        }
    }
}

// The same name in another module is a different job.
#[mp::job]
fn triple(x: i32) -> i32 {
    -x
}

fn main() {
    assert_eq!(outer::inner::triple(2), 6);
    assert_eq!(outer::inner::call_private(2), 3);
    assert_eq!(triple(2), -2);
    let pool = mp::Pool::new(1).expect("pool");
    assert_eq!(pool.apply(outer::inner::triple, (2,)).expect("apply"), 6);
    assert_eq!(pool.apply(triple, (2,)).expect("apply"), -2);
}

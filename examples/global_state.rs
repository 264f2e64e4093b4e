//! Globals are not shared between processes: each process has its own copy.
//!
//! ```python
//! from multiprocessing import Process
//!
//! lis = []
//!
//! def foo(i):
//!     lis.append(i)
//!     print("This is Process ", i, " and lis is ", lis, " and lis.address is  ", id(lis))
//!
//! if __name__ == '__main__':
//!     for i in range(5):
//!         p = Process(target=foo, args=(i,))
//!         p.start()
//!     print("The end of list_1:", lis)     # The end of list_1: []
//! ```
//!
//! Every worker is a fresh run of this program, so it starts with its own empty
//! `LIS`; what a worker pushes stays in that worker. To share data between
//! processes, pass it as an argument and return it, or use a queue, a pipe or
//! shared memory.

use std::sync::Mutex;

static LIS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[mp::job]
fn foo(i: u32) -> Vec<u32> {
    let mut lis = LIS.lock().unwrap();
    lis.push(i);
    println!(
        "This is Process {i} and lis is {lis:?} (pid {}, lis at {:p})",
        std::process::id(),
        &*lis
    );
    lis.clone()
}

mp::main! {
    fn main() {
        let procs: Vec<_> = (0..5)
            .map(|i| mp::Process::spawn(foo, (i,)).unwrap())
            .collect();
        println!("The end of list_1: {:?}", *LIS.lock().unwrap());

        for (i, p) in (0..5).zip(procs) {
            // Each process saw only its own push.
            assert_eq!(p.join().unwrap(), vec![i]);
        }
        // ... and the parent's list is still empty after all of them ran.
        let lis = LIS.lock().unwrap();
        assert!(lis.is_empty());
        println!("after joining all processes, lis is still {:?}", *lis);
    }
}

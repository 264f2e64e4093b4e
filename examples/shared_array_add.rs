//! Ten processes each add 100 to the first element of a shared `Array`, under
//! the array's own lock, and print what they saw.
//!
//! ```python
//! from multiprocessing import Process, Array
//!
//! def f(i, arr):
//!     with arr.get_lock():
//!         arr[0] += 100
//!         print("process", i, "after changing the first element ----->", arr[0])
//!
//! if __name__ == "__main__":
//!     arr = Array('i', [1, 2, 3, 4])
//!     for i in range(10):
//!         Process(target=f, args=(i, arr)).start()
//! ```
//!
//! Output (the order of the processes varies, the values never repeat):
//! `process 2 after changing the first element -----> 101`, `... 201`, ... `1001`.

use std::io::Write;

#[mp::job]
fn f(i: u32, arr: mp::Array<i32>) -> i32 {
    let mut a = arr.lock().expect("array lock");
    a[0] += 100;
    let seen = a[0];
    // One write per line, so lines of different processes never mix.
    let line = format!("process {i} after changing the first element -----> {seen}\n");
    let _ = std::io::stdout().write_all(line.as_bytes());
    seen
}

mp::main! {
    fn main() -> mp::Result<()> {
        let arr = mp::Array::from_slice(&[1i32, 2, 3, 4])?;
        let processes = (0..10)
            .map(|i| mp::Process::spawn(f, (i, arr.clone())))
            .collect::<mp::Result<Vec<_>>>()?;
        let mut seen = processes.into_iter().map(|p| p.join()).collect::<mp::Result<Vec<_>>>()?;
        seen.sort();
        assert_eq!(seen, (1..=10).map(|k| 1 + 100 * k).collect::<Vec<_>>());
        assert_eq!(arr.to_vec()?, vec![1001, 2, 3, 4]);
        println!("final array: {:?}", arr.to_vec()?);
        Ok(())
    }
}

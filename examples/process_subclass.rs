//! Python's "subclass `Process` and override `run`" pattern, the Rust way: the
//! process's state is a serde struct, `run` is a job taking that struct, and a
//! small `start` method spawns it under its own name.
//!
//! ```python
//! class MyProcess(Process):
//!     def run(self):
//!         time.sleep(1)
//!         print('hello', self.name, time.ctime())   # self.name is the process name
//!
//! p_list = []
//! for i in range(3):
//!     p = MyProcess()
//!     p.start()
//!     p_list.append(p)
//! for p in p_list:
//!     p.join()
//! print('end')
//! # hello MyProcess-1 Sat May  4 15:42:00 2019
//! # hello MyProcess-2 Sat May  4 15:42:00 2019
//! # hello MyProcess-3 Sat May  4 15:42:00 2019
//! # end
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Everything the process needs, sent to it when it starts (the "fields of the subclass").
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MyProcess {
    name: String,
    sleep_ms: u64,
}

impl MyProcess {
    fn new(index: usize) -> MyProcess {
        MyProcess {
            name: format!("MyProcess-{index}"),
            sleep_ms: 200,
        }
    }

    /// `Process.start()`: runs [`run`] with this state in a new process named `self.name`.
    fn start(self) -> mp::Result<mp::Process<String>> {
        mp::Process::builder()
            .name(self.name.clone())
            .spawn(run, (self,))
    }
}

/// `MyProcess.run`: what the process does. Its return value is what `join` returns.
#[mp::job]
fn run(p: MyProcess) -> String {
    std::thread::sleep(Duration::from_millis(p.sleep_ms));
    // The process really runs under the name it was given.
    let name = mp::current_process().name().to_string();
    assert_eq!(name, p.name);
    println!("hello {name} {}", clock());
    name
}

/// The time of day in UTC with milliseconds, standing in for `time.ctime()`.
fn clock() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    )
}

mp::main! {
    fn main() {
        let mut p_list = Vec::new();
        for i in 1..=3 {
            let p = MyProcess::new(i).start().unwrap();
            assert_eq!(p.name(), format!("MyProcess-{i}"));
            p_list.push(p);
        }
        // join blocks until that process has finished.
        let names: Vec<String> = p_list.into_iter().map(|p| p.join().unwrap()).collect();
        assert_eq!(names, ["MyProcess-1", "MyProcess-2", "MyProcess-3"]);
        println!("end");
    }
}

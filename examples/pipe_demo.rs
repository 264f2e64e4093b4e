//! Duplex pipes between processes with `mp::pipe`: two Python examples from
//! the posts, then what a `Connection` does that Python's does not.
//!
//! The first, from "进程间通信" ("communication between processes"): a child
//! sends a list to its parent and reads the parent's reply.
//!
//! ```python
//! from multiprocessing import Process, Pipe
//!
//! def f(conn):
//!     conn.send([12, {"name": "chen"}, 'hello'])
//!     response = conn.recv()
//!     print("response", response)
//!     conn.close()
//!
//! if __name__ == '__main__':
//!     parent_conn, child_conn = Pipe()
//!     p = Process(target=f, args=(child_conn,))
//!     p.start()
//!     print(parent_conn.recv())
//!     parent_conn.send("儿子你好!")          # "hello, son!"
//!     p.join()
//! ```
//!
//! The second, from "Python-多进程编程" ("multiprocess programming in Python"):
//! two processes, each holding one end of the same pipe.
//!
//! ```python
//! import multiprocessing as mul
//!
//! def proc1(pipe):
//!     pipe.send('hello')
//!     print('proc1 rec:', pipe.recv())
//!
//! def proc2(pipe):
//!     print('proc2 rec:', pipe.recv())
//!     pipe.send('hello, too')
//!
//! pipe = mul.Pipe()
//! if __name__ == '__main__':
//!     p1 = mul.Process(target=proc1, args=(pipe[0],))
//!     p2 = mul.Process(target=proc2, args=(pipe[1],))
//!     p1.start()
//!     p2.start()
//!     p1.join()
//!     p2.join()
//! ```
//!
//! A Python pipe carries any object; a `Connection<T>` carries one serde type,
//! so the first example's list of mixed values is a small enum of Python-like
//! values, printed the way Python prints them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A Python value, as far as these examples need one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Py {
    Int(i64),
    Str(String),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl Py {
    fn str(s: &str) -> Py {
        Py::Str(s.to_string())
    }

    /// Python's `repr()`.
    fn repr(&self) -> String {
        match self {
            Py::Int(n) => n.to_string(),
            Py::Str(s) => format!("'{s}'"),
            Py::List(items) => {
                let items: Vec<String> = items.iter().map(Py::repr).collect();
                format!("[{}]", items.join(", "))
            }
            Py::Dict(pairs) => {
                let pairs: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.repr(), v.repr()))
                    .collect();
                format!("{{{}}}", pairs.join(", "))
            }
        }
    }
}

/// What `print()` shows: Python's `str()`, which is `repr()` except for strings.
impl std::fmt::Display for Py {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Py::Str(s) => f.write_str(s),
            other => f.write_str(&other.repr()),
        }
    }
}

#[mp::job]
fn f(conn: mp::Connection<Py>) -> Py {
    conn.send(&Py::List(vec![
        Py::Int(12),
        Py::Dict(vec![(Py::str("name"), Py::str("chen"))]),
        Py::str("hello"),
    ]))
    .unwrap();
    let response = conn.recv().unwrap();
    println!("response {response}");
    // Dropping `conn` at the end is Python's `conn.close()`.
    response
}

#[mp::job]
fn proc1(pipe: mp::Connection<String>) -> String {
    pipe.send(&"hello".to_string()).unwrap();
    let got = pipe.recv().unwrap();
    println!("proc1 rec: {got}");
    got
}

#[mp::job]
fn proc2(pipe: mp::Connection<String>) -> String {
    let got = pipe.recv().unwrap();
    println!("proc2 rec: {got}");
    pipe.send(&"hello, too".to_string()).unwrap();
    got
}

/// Answers one raw message with its bytes reversed, then exits.
#[mp::job]
fn reverse_once(conn: mp::Connection<String>) {
    let mut bytes = conn.recv_bytes().unwrap();
    bytes.reverse();
    conn.send_bytes(&bytes).unwrap();
}

mp::main! {
    fn main() -> mp::Result<()> {
        // 1. The child sends a list and prints the parent's reply.
        let (parent_conn, child_conn) = mp::pipe::<Py>()?;
        let p = mp::Process::spawn(f, (child_conn,))?;
        let got = parent_conn.recv()?;
        println!("{got}");
        assert_eq!(got.to_string(), "[12, {'name': 'chen'}, 'hello']");
        parent_conn.send(&Py::str("hello, son!"))?;
        assert_eq!(p.join()?, Py::str("hello, son!"));

        // 2. Two processes, one end each.
        let (end0, end1) = mp::pipe::<String>()?;
        let p1 = mp::Process::spawn(proc1, (end0,))?;
        let p2 = mp::Process::spawn(proc2, (end1,))?;
        assert_eq!(p1.join()?, "hello, too");
        assert_eq!(p2.join()?, "hello");

        // 3. poll, raw bytes, and a peer that is gone.
        let (a, b) = mp::pipe::<String>()?;
        let ready = a.poll(None)?;
        println!("poll() with nothing sent: {ready}");
        assert!(!ready);
        // `b` moves into the child: this process keeps no copy of that end.
        let p = mp::Process::spawn(reverse_once, (b,))?;
        a.send_bytes(b"stressed")?;
        let ready = a.poll(Some(Duration::from_secs(30)))?;
        println!("poll(30) after send_bytes(b'stressed'): {ready}");
        assert!(ready);
        let reply = a.recv_bytes()?;
        println!("recv_bytes() = b'{}'", String::from_utf8_lossy(&reply));
        assert_eq!(reply, b"desserts");
        p.join()?;
        // Python raises EOFError here, or waits forever if the parent still
        // holds a copy of the child's end; mp says the peer is gone.
        let err = a.recv().unwrap_err();
        println!("recv() after the child exited: {err}");
        assert!(matches!(err, mp::Error::Disconnected));
        Ok(())
    }
}

//! A client of a manager served on the network: the other half of
//! `manager_server.rs`, like Python's
//!
//! ```python
//! from multiprocessing.managers import BaseManager
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_jobs')
//! m = QueueManager(address=('server.example', 50000), authkey=b'abracadabra')
//! m.connect()
//! jobs = m.get_jobs()
//! ```
//!
//! ```text
//! manager_client ADDR [--stop]
//! ```
//!
//! Connects to the manager at `ADDR` with the authkey in `MP_AUTHKEY`
//! (waiting up to 30 s for it to come up), then records jobs in its dict
//! named `jobs`: two from this process and four from a local pool, whose
//! workers get the proxy as an argument. With `--stop` it then tells the
//! server to stop.
//!
//! With no arguments it is a self-contained demo: it serves a manager on a
//! free loopback port itself and connects to that.

use std::time::{Duration, Instant};

const DEMO_KEY: &str = "mp-manager-demo";

/// A pool task on the client machine, writing to the server's dict.
#[mp::job]
fn work(jobs: mp::DictProxy<String, String>, n: u32) -> u32 {
    let result = n * n;
    jobs.insert(
        format!("{}-pool-{n}", host()),
        format!("{n}² = {result}, by process {}", std::process::id()),
    )
    .unwrap();
    result
}

fn host() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "client".to_string())
}

/// Connects, retrying while nothing listens yet (the server may still be starting).
fn connect(addr: &str, authkey: &str) -> mp::Manager {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match mp::Manager::connect(addr, authkey) {
            Ok(m) => return m,
            Err(mp::Error::Io(e)) if Instant::now() < deadline => {
                eprintln!("manager_client: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                eprintln!("manager_client: {e}");
                std::process::exit(1);
            }
        }
    }
}

mp::main! {
    fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let stop = args.iter().any(|a| a == "--stop");
        let addr = args.iter().find(|a| !a.starts_with("--")).cloned();
        // No address: stand in for the server program ourselves.
        let (_local, addr, authkey) = match addr {
            Some(addr) => {
                let key = std::env::var("MP_AUTHKEY").unwrap_or_else(|_| DEMO_KEY.to_string());
                (None, addr, key)
            }
            None => {
                let local = mp::Manager::serve("127.0.0.1:0", DEMO_KEY).unwrap();
                let addr = local.address().to_string();
                println!("no address given: serving a demo manager on {addr}");
                (Some(local), addr, DEMO_KEY.to_string())
            }
        };

        let m = connect(&addr, &authkey);
        println!("connected to the manager at {}", m.address());
        let jobs = m.dict_named::<String, String>("jobs").unwrap();
        for n in 0..2 {
            jobs.insert(
                format!("{}-main-{n}", host()),
                format!("by process {}", std::process::id()),
            )
            .unwrap();
        }
        let pool = mp::Pool::new(2).unwrap();
        let squares = pool
            .starmap(work, (0..4).map(|n| (jobs.clone(), n)).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(squares, vec![0, 1, 4, 9]);
        println!("the manager now holds {} jobs:", jobs.len().unwrap());
        for (name, by) in jobs.items().unwrap() {
            println!("  {name}: {by}");
        }
        assert!(jobs.len().unwrap() >= 6);
        if stop {
            match m.event_named("stop").unwrap().set() {
                Ok(()) => println!("told the server to stop"),
                // The server may stop before its answer to `set` reaches us.
                Err(e @ mp::Error::Disconnected) => println!("the server stopped ({e})"),
                Err(e) => panic!("could not tell the server to stop: {e}"),
            }
        }
    }
}

//! A manager served on the network: the server half of a two-program example
//! (`manager_client.rs` is the other half), like Python's
//!
//! ```python
//! from multiprocessing.managers import BaseManager
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_jobs', callable=lambda: jobs)
//! m = QueueManager(address=('', 50000), authkey=b'abracadabra')
//! m.get_server().serve_forever()
//! ```
//!
//! ```text
//! manager_server ADDR [--for SECONDS]
//! ```
//!
//! Serves on `ADDR` (`0.0.0.0:50000` to accept other machines) with the
//! authkey in `MP_AUTHKEY` (required unless `ADDR` is a loopback address).
//! It holds a dict named `jobs` and an event named `stop`, and runs until a
//! client sets `stop` (`manager_client ADDR --stop`) or `SECONDS` pass
//! (default 600). Then it prints the jobs and exits.
//!
//! With no arguments it is a self-contained demo that ends at once: it serves
//! on a free loopback port and three child processes connect to it by
//! address, as three other programs would.

use std::time::Duration;

/// The key a loopback demo uses when `MP_AUTHKEY` is not set.
const DEMO_KEY: &str = "mp-manager-demo";

/// What `manager_client` does, from a child process: connect by address and
/// record a job in the shared dict.
#[mp::job]
fn remote_client(addr: String, authkey: String, n: u32) -> usize {
    let m = mp::Manager::connect(addr.as_str(), authkey).unwrap();
    let jobs = m.dict_named::<String, String>("jobs").unwrap();
    jobs.insert(
        format!("demo-{n}"),
        format!("done by process {}", std::process::id()),
    )
    .unwrap();
    jobs.len().unwrap()
}

fn usage() -> ! {
    eprintln!("usage: manager_server [ADDR [--for SECONDS]]   (authkey in MP_AUTHKEY)");
    std::process::exit(2)
}

fn authkey_for(addr: &str) -> String {
    match std::env::var("MP_AUTHKEY") {
        Ok(key) => key,
        Err(_) => {
            let loopback = addr.starts_with("127.")
                || addr.starts_with("[::1]")
                || addr.starts_with("localhost");
            if !loopback {
                eprintln!("set MP_AUTHKEY to the key clients must know before serving on {addr}");
                std::process::exit(2);
            }
            DEMO_KEY.to_string()
        }
    }
}

mp::main! {
    fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.is_empty() {
            return demo();
        }
        let addr = args[0].clone();
        let seconds: u64 = match args.get(1..) {
            Some([]) | None => 600,
            Some([flag, n]) if flag == "--for" => n.parse().unwrap_or_else(|_| usage()),
            Some(_) => usage(),
        };
        let authkey = authkey_for(&addr);
        let server = match mp::Manager::serve(addr.as_str(), &authkey) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("manager_server: {e}");
                std::process::exit(1);
            }
        };
        let jobs = server.dict_named::<String, String>("jobs").unwrap();
        let stop = server.event_named("stop").unwrap();
        println!(
            "serving on {} (server process {}); waiting up to {seconds} s for a client to \
             say stop",
            server.address(),
            server.pid().unwrap_or(0)
        );
        let stopped = stop.wait_timeout(Duration::from_secs(seconds)).unwrap();
        println!(
            "{}; {} jobs:",
            if stopped { "a client said stop" } else { "time is up" },
            jobs.len().unwrap()
        );
        for (name, by) in jobs.items().unwrap() {
            println!("  {name}: {by}");
        }
        server.shutdown().unwrap();
    }
}

fn demo() {
    let server = mp::Manager::serve("127.0.0.1:0", DEMO_KEY).unwrap();
    let addr = server.address().to_string();
    println!("serving on {addr}; three client processes connect to it");
    let jobs = server.dict_named::<String, String>("jobs").unwrap();
    let clients: Vec<_> = (0..3)
        .map(|n| {
            mp::Process::spawn(remote_client, (addr.clone(), DEMO_KEY.to_string(), n)).unwrap()
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    for (name, by) in jobs.items().unwrap() {
        println!("  {name}: {by}");
    }
    assert_eq!(jobs.len().unwrap(), 3);
    // A wrong key is refused (the server logs one line about it).
    match mp::Manager::connect(addr.as_str(), "wrong key") {
        Err(e @ mp::Error::AuthenticationFailed) => println!("a wrong authkey: {e}"),
        other => panic!("a wrong key must be refused, got {other:?}"),
    }
}

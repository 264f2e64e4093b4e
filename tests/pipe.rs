//! `mp::pipe`: duplex connections between processes, handles passed to jobs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Items(Vec<i64>, String),
    Text(String),
    Blob(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Seed 003: the child sends a list, then reads the parent's answer.
#[mp::job]
fn child_talks(conn: mp::Connection<Msg>) -> Msg {
    conn.send(&Msg::Items(vec![12, 42], "hello".into()))
        .unwrap();
    conn.recv().unwrap()
}

#[mp::job]
fn echo_until_closed(conn: mp::Connection<Msg>) -> usize {
    let mut n = 0;
    while let Ok(msg) = conn.recv() {
        conn.send(&msg).unwrap();
        n += 1;
    }
    n
}

#[derive(Serialize, Deserialize)]
struct Job {
    id: u32,
    reply: mp::Connection<u32>,
}

#[mp::job]
fn reply_through(jobs: Vec<Job>) -> u32 {
    for job in &jobs {
        job.reply.send(&(job.id * 10)).unwrap();
    }
    jobs.len() as u32
}

#[mp::job]
fn send_then_die(conn: mp::Connection<u32>) {
    conn.send(&1).unwrap();
    conn.send(&2).unwrap();
    std::process::abort();
}

#[mp::job]
fn hold_forever(conn: mp::Connection<u32>) {
    let _keep = conn;
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn duplex_in_one_process() {
    let (a, b) = mp::pipe::<Msg>().unwrap();
    a.send(&Msg::Text("ping".into())).unwrap();
    assert_eq!(b.recv().unwrap(), Msg::Text("ping".into()));
    b.send(&Msg::Text("pong".into())).unwrap();
    assert_eq!(a.recv().unwrap(), Msg::Text("pong".into()));
    a.send_bytes(b"raw").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"raw");
}

#[test]
fn poll_waits_for_data() {
    let (a, b) = mp::pipe::<u32>().unwrap();
    assert!(!b.poll(None).unwrap());
    assert!(!b.poll(Some(Duration::from_millis(20))).unwrap());
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(10)),
        Err(mp::Error::Timeout { .. })
    ));
    a.send(&7).unwrap();
    assert!(b.poll(Some(Duration::from_secs(5))).unwrap());
    assert_eq!(b.recv().unwrap(), 7);
}

#[test]
fn talks_with_a_process() {
    let (parent, child) = mp::pipe::<Msg>().unwrap();
    let p = mp::Process::spawn(child_talks, (child,)).unwrap();
    assert_eq!(
        parent.recv().unwrap(),
        Msg::Items(vec![12, 42], "hello".into())
    );
    parent.send(&Msg::Text("hi, child".into())).unwrap();
    assert_eq!(p.join().unwrap(), Msg::Text("hi, child".into()));
}

#[test]
fn disconnected_when_the_peer_exits() {
    let (parent, child) = mp::pipe::<Msg>().unwrap();
    let p = mp::Process::spawn(echo_until_closed, (child,)).unwrap();
    for i in 0..100 {
        parent.send(&Msg::Items(vec![i], String::new())).unwrap();
        assert_eq!(parent.recv().unwrap(), Msg::Items(vec![i], String::new()));
    }
    // Closing our end ends the child's loop; its return proves it saw Disconnected.
    drop(parent);
    assert_eq!(p.join().unwrap(), 100);
}

#[test]
fn a_peer_killed_mid_stream_is_disconnected_not_a_hang() {
    let (parent, child) = mp::pipe::<u32>().unwrap();
    let p = mp::Process::spawn(send_then_die, (child,)).unwrap();
    assert_eq!(parent.recv().unwrap(), 1);
    assert_eq!(parent.recv().unwrap(), 2);
    assert!(matches!(parent.recv(), Err(mp::Error::Disconnected)));
    assert!(matches!(p.join(), Err(mp::Error::WorkerDied { .. })));

    let (parent, child) = mp::pipe::<u32>().unwrap();
    let p = mp::Process::spawn(hold_forever, (child,)).unwrap();
    assert!(!parent.poll(Some(Duration::from_millis(50))).unwrap());
    p.kill().unwrap();
    assert!(matches!(parent.recv(), Err(mp::Error::Disconnected)));
}

#[test]
fn large_messages_cross() {
    let (parent, child) = mp::pipe::<Msg>().unwrap();
    let p = mp::Process::spawn(echo_until_closed, (child,)).unwrap();
    let blob: Vec<u8> = (0..32 << 20).map(|i: u32| (i % 251) as u8).collect();
    parent.send(&Msg::Blob(blob.clone())).unwrap();
    assert_eq!(parent.recv().unwrap(), Msg::Blob(blob));
    drop(parent);
    assert_eq!(p.join().unwrap(), 1);
}

#[test]
fn connections_travel_inside_pool_tasks() {
    let pool = mp::Pool::new(2).unwrap();
    let mut receivers = Vec::new();
    let mut jobs = Vec::new();
    for id in 0..5 {
        let (tx, rx) = mp::pipe::<u32>().unwrap();
        jobs.push(Job { id, reply: tx });
        receivers.push(rx);
    }
    assert_eq!(pool.apply(reply_through, (jobs,)).unwrap(), 5);
    let got: Vec<u32> = receivers.iter().map(|rx| rx.recv().unwrap()).collect();
    assert_eq!(got, vec![0, 10, 20, 30, 40]);
}

#[test]
fn an_end_with_unread_messages_is_not_passed_on() {
    let (a, b) = mp::pipe::<u32>().unwrap();
    a.send(&1).unwrap();
    a.send(&2).unwrap();
    // Small messages are read ahead: the second is now buffered in this process.
    assert_eq!(b.recv().unwrap(), 1);
    let err = mp::Process::spawn(echo_u32_once, (b.clone(),)).unwrap_err();
    assert!(err.to_string().contains("not yet taken"), "{err}");
    assert_eq!(b.recv().unwrap(), 2);
    // Nothing buffered any more: it travels.
    let p = mp::Process::spawn(echo_u32_once, (b,)).unwrap();
    a.send(&3).unwrap();
    assert_eq!(a.recv().unwrap(), 3);
    p.join().unwrap();
}

#[mp::job]
fn echo_u32_once(conn: mp::Connection<u32>) {
    let x = conn.recv().unwrap();
    conn.send(&x).unwrap();
}

/// Both ends of a new pipe, made in a worker and returned as the result.
#[mp::job]
fn make_pair() -> (mp::Connection<u32>, mp::Connection<u32>) {
    mp::pipe().unwrap()
}

/// Returns the end it was given, after using it.
#[mp::job]
fn use_and_return(conn: mp::Connection<u32>) -> mp::Connection<u32> {
    conn.send(&(conn.recv().unwrap() + 1)).unwrap();
    conn
}

#[test]
fn handles_travel_to_a_worker_and_back_in_results() {
    let pool = mp::Pool::new(1).unwrap();
    // Worker to parent: both ends were made in the worker.
    let (a, b) = pool.apply(make_pair, ()).unwrap();
    a.send(&7).unwrap();
    assert_eq!(b.recv().unwrap(), 7);
    // Parent to worker and back: the end returned is the one that was sent.
    let (ours, theirs) = mp::pipe::<u32>().unwrap();
    ours.send(&41).unwrap();
    let back = pool.apply(use_and_return, (theirs,)).unwrap();
    assert_eq!(ours.recv().unwrap(), 42);
    back.send(&1).unwrap();
    assert_eq!(ours.recv().unwrap(), 1);
}

/// Makes a pipe, sends one end to the parent through `control` and serves the
/// other: doubles what arrives until it is closed.
#[mp::job]
fn serve_a_new_pipe(control: mp::Connection<mp::Connection<u32>>) {
    let (ours, theirs) = mp::pipe::<u32>().unwrap();
    control.send(&theirs).unwrap();
    drop(theirs);
    while let Ok(x) = ours.recv() {
        ours.send(&(x * 2)).unwrap();
    }
}

#[test]
fn a_pipe_end_travels_through_a_pipe() {
    let (control, child_control) = mp::pipe::<mp::Connection<u32>>().unwrap();
    let p = mp::Process::spawn(serve_a_new_pipe, (child_control,)).unwrap();
    let end = control.recv().unwrap();
    for x in 0..10 {
        end.send(&x).unwrap();
        assert_eq!(end.recv().unwrap(), x * 2);
    }
    drop(end);
    p.join().unwrap();
}

/// Sends a new pipe end through `control`, then exits at once.
#[mp::job]
fn send_an_end_and_exit(control: mp::Connection<mp::Connection<u32>>) {
    let (ours, theirs) = mp::pipe::<u32>().unwrap();
    control.send(&theirs).unwrap();
    ours.send(&3).unwrap();
}

/// On Unix a descriptor in flight is held by the kernel, so it arrives after its
/// sender exited. On Windows the receiver pulls it out of the sender, which must
/// still run: a clear error, never a hang or a handle of another process.
#[test]
fn an_end_from_a_sender_that_exited() {
    let (control, child_control) = mp::pipe::<mp::Connection<u32>>().unwrap();
    let p = mp::Process::spawn(send_an_end_and_exit, (child_control,)).unwrap();
    p.join().unwrap();
    let received = control.recv();
    if cfg!(windows) {
        let err = received.unwrap_err();
        assert!(matches!(err, mp::Error::Codec(_)), "{err}");
        assert!(err.to_string().contains("has exited"), "{err}");
        // The stream stays usable: the next message is read normally.
        assert!(matches!(control.recv(), Err(mp::Error::Disconnected)));
    } else {
        assert_eq!(received.unwrap().recv().unwrap(), 3);
    }
}

/// A `recv` blocked on an end does not hold up a `send` on the same end (on
/// Windows each direction is its own pipe for this reason).
#[test]
fn a_blocked_recv_does_not_hold_up_a_send() {
    let (a, b) = mp::pipe::<u32>().unwrap();
    let reader = a.clone();
    let waiting = std::thread::spawn(move || reader.recv().unwrap());
    std::thread::sleep(Duration::from_millis(50));
    a.send(&1).unwrap();
    assert_eq!(b.recv().unwrap(), 1);
    b.send(&2).unwrap();
    assert_eq!(waiting.join().unwrap(), 2);
}

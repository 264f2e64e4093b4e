//! Jobs of every shape run in real worker processes, through `apply`,
//! `starmap` and `Process::spawn`, and anything that is not a job is refused
//! with `Error::NotAJob` before work is sent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
    label: Option<String>,
}

fn point(x: i64, y: i64, label: Option<&str>) -> Point {
    Point {
        x,
        y,
        label: label.map(str::to_string),
    }
}

/// Arity 0: the pid proves it ran elsewhere.
#[mp::job]
fn zero() -> (u32, String) {
    (std::process::id(), "zero".to_string())
}

/// Arity 1, a user struct in and out.
#[mp::job]
fn mirror(p: Point) -> Point {
    Point {
        x: p.y,
        y: p.x,
        label: p.label.map(|l| l.to_uppercase()),
    }
}

/// Arity 2: a `Vec<String>` and an `Option`.
#[mp::job]
fn join_words(words: Vec<String>, sep: Option<char>) -> String {
    let sep = sep.map(String::from).unwrap_or_default();
    words.join(&sep)
}

/// Arity 5: integers, a tuple, a `Vec` of structs, a nested `Option`, a bool.
#[mp::job]
fn five(
    base: u8,
    pair: (i32, String),
    points: Vec<Point>,
    extra: Option<Vec<u64>>,
    negate: bool,
) -> (i64, Vec<String>) {
    let sum: i64 = i64::from(base)
        + i64::from(pair.0)
        + points.iter().map(|p| p.x + p.y).sum::<i64>()
        + extra
            .unwrap_or_default()
            .iter()
            .map(|&v| i64::try_from(v).expect("small"))
            .sum::<i64>();
    let labels = std::iter::once(pair.1)
        .chain(points.into_iter().filter_map(|p| p.label))
        .collect();
    (if negate { -sum } else { sum }, labels)
}

/// Arity 12, every argument a different type.
#[mp::job]
#[allow(clippy::too_many_arguments)]
fn twelve(
    a1: u8,
    a2: u16,
    a3: u32,
    a4: u64,
    a5: i8,
    a6: i64,
    a7: f64,
    a8: char,
    a9: String,
    a10: Vec<u8>,
    a11: (bool, Option<i32>),
    a12: Point,
) -> String {
    format!("{a1}|{a2}|{a3}|{a4}|{a5}|{a6}|{a7}|{a8}|{a9}|{a10:?}|{a11:?}|{a12:?}")
}

/// Unit return: the job's effect is a file the parent reads back.
#[mp::job]
fn write_lines(path: String, lines: Vec<String>) {
    std::fs::write(path, lines.join("\n")).expect("write the file");
}

type TwelveArgs = (
    u8,
    u16,
    u32,
    u64,
    i8,
    i64,
    f64,
    char,
    String,
    Vec<u8>,
    (bool, Option<i32>),
    Point,
);

fn twelve_args(seed: u8) -> TwelveArgs {
    (
        seed,
        u16::from(seed) * 300,
        70_000 + u32::from(seed),
        u64::MAX - u64::from(seed),
        -(seed as i8),
        i64::MIN + i64::from(seed),
        f64::from(seed) + 0.25,
        char::from(b'a' + seed),
        format!("arg {seed}"),
        vec![seed; usize::from(seed)],
        (
            seed.is_multiple_of(2),
            (seed > 1).then_some(i32::from(seed) * -7),
        ),
        point(i64::from(seed), -1, Some("twelve")),
    )
}

fn twelve_local(a: TwelveArgs) -> String {
    twelve(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8, a.9, a.10, a.11)
}

type FiveArgs = (u8, (i32, String), Vec<Point>, Option<Vec<u64>>, bool);

fn five_args() -> FiveArgs {
    (
        7,
        (-3, "pair".to_string()),
        vec![
            point(1, 2, Some("a")),
            point(10, 20, None),
            point(-5, 0, Some("c")),
        ],
        Some(vec![100, 200]),
        true,
    )
}

/// A path no other test (or run) uses; removed by `Drop`.
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempFile(std::env::temp_dir().join(format!("mp-arity-{}-{n}.txt", std::process::id())))
    }

    fn path(&self) -> String {
        self.0.to_str().expect("utf-8 temp dir").to_string()
    }

    fn read(&self) -> String {
        std::fs::read_to_string(&self.0).expect("the job wrote the file")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn apply_runs_every_arity() {
    let pool = mp::Pool::new(2).unwrap();

    let (pid, word) = pool.apply(zero, ()).unwrap();
    assert_ne!(pid, std::process::id());
    assert_eq!(word, "zero");

    assert_eq!(
        pool.apply(mirror, (point(1, 2, Some("p")),)).unwrap(),
        point(2, 1, Some("P"))
    );

    let words = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    assert_eq!(
        pool.apply(join_words, (words.clone(), Some('-'))).unwrap(),
        "a-b-c"
    );
    assert_eq!(pool.apply(join_words, (words, None)).unwrap(), "abc");

    // 7 - 3 + (1 + 2) + (10 + 20) + (-5 + 0) + 100 + 200, negated.
    let expected = (-332, vec!["pair".to_string(), "a".into(), "c".into()]);
    assert_eq!(pool.apply(five, five_args()).unwrap(), expected);

    for seed in [0, 1, 5] {
        let got = pool.apply(twelve, twelve_args(seed)).unwrap();
        assert_eq!(got, twelve_local(twelve_args(seed)));
    }

    let file = TempFile::new();
    let lines = vec!["one".to_string(), "two".to_string()];
    let unit: () = pool.apply(write_lines, (file.path(), lines)).unwrap();
    assert_eq!(unit, ());
    assert_eq!(file.read(), "one\ntwo");
}

#[test]
fn starmap_runs_every_arity() {
    let pool = mp::Pool::new(2).unwrap();

    let zeros = pool.starmap(zero, vec![(); 5]).unwrap();
    assert_eq!(zeros.len(), 5);
    for (pid, word) in &zeros {
        assert_ne!(*pid, std::process::id());
        assert_eq!(word, "zero");
    }

    let points: Vec<(Point,)> = (0..10).map(|i| (point(i, -i, None),)).collect();
    let mirrored = pool.starmap(mirror, points).unwrap();
    let expected: Vec<Point> = (0..10).map(|i| point(-i, i, None)).collect();
    assert_eq!(mirrored, expected);

    let pairs: Vec<(Vec<String>, Option<char>)> = (0..6)
        .map(|i| {
            let words = (0..i).map(|w| w.to_string()).collect();
            (words, (i % 2 == 0).then_some(','))
        })
        .collect();
    let joined = pool.starmap(join_words, pairs).unwrap();
    assert_eq!(joined, ["", "0", "0,1", "012", "0,1,2,3", "01234"]);

    let mut args = vec![five_args(); 3];
    args[1].4 = false;
    args[2].3 = None;
    let fives = pool.starmap(five, args).unwrap();
    let labels = vec!["pair".to_string(), "a".into(), "c".into()];
    assert_eq!(
        fives,
        vec![(-332, labels.clone()), (332, labels.clone()), (-32, labels)]
    );

    let seeds: Vec<u8> = (0..9).collect();
    let twelves = pool
        .starmap(twelve, seeds.iter().map(|&s| twelve_args(s)))
        .unwrap();
    let expected: Vec<String> = seeds
        .iter()
        .map(|&s| twelve_local(twelve_args(s)))
        .collect();
    assert_eq!(twelves, expected);

    let files: Vec<TempFile> = (0..4).map(|_| TempFile::new()).collect();
    let jobs: Vec<(String, Vec<String>)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path(), vec![format!("file {i}")]))
        .collect();
    let units: Vec<()> = pool.starmap(write_lines, jobs).unwrap();
    assert_eq!(units.len(), 4);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(f.read(), format!("file {i}"));
    }
}

#[test]
fn process_spawn_runs_every_arity() {
    let (pid, word) = mp::Process::spawn(zero, ()).unwrap().join().unwrap();
    assert_ne!(pid, std::process::id());
    assert_eq!(word, "zero");

    let p = mp::Process::spawn(mirror, (point(3, 4, Some("q")),)).unwrap();
    assert_ne!(p.pid(), std::process::id());
    assert_eq!(p.join().unwrap(), point(4, 3, Some("Q")));

    let words = vec!["x".to_string(), "y".to_string()];
    let p = mp::Process::spawn(join_words, (words, Some('+'))).unwrap();
    assert_eq!(p.join().unwrap(), "x+y");

    let p = mp::Process::spawn(five, five_args()).unwrap();
    let expected = (-332, vec!["pair".to_string(), "a".into(), "c".into()]);
    assert_eq!(p.join().unwrap(), expected);

    let p = mp::Process::spawn(twelve, twelve_args(3)).unwrap();
    assert_eq!(p.join().unwrap(), twelve_local(twelve_args(3)));

    let file = TempFile::new();
    let p = mp::Process::spawn(write_lines, (file.path(), vec!["spawned".to_string()])).unwrap();
    p.join().unwrap();
    assert_eq!(file.read(), "spawned");
}

/// A plain fn with the right shape, but no `#[mp::job]`.
fn plain(x: u64) -> u64 {
    x + 1
}

fn assert_not_a_job<T: std::fmt::Debug>(result: mp::Result<T>, what: &str) {
    match result {
        Err(e @ mp::Error::NotAJob { .. }) => {
            let message = e.to_string();
            assert!(message.contains("#[mp::job]"), "{what}: {message}");
        }
        other => panic!("{what}: expected Err(NotAJob), got {other:?}"),
    }
}

#[test]
fn a_plain_fn_is_not_a_job() {
    let pool = mp::Pool::new(2).unwrap();
    assert_not_a_job(pool.apply(plain, (1,)), "apply");
    assert_not_a_job(pool.map(plain, 0..4), "map");
    assert_not_a_job(pool.starmap(plain, vec![(1,)]), "starmap");
    let first = pool
        .imap(plain, 0..4)
        .next()
        .expect("imap yields the error");
    assert_not_a_job(first, "imap");
    assert_not_a_job(mp::Process::spawn(plain, (1,)), "Process::spawn");
    let built = mp::Pool::builder()
        .processes(1)
        .initializer(plain, (1,))
        .build();
    assert_not_a_job(built, "Pool::builder().initializer(..).build()");

    // The error names the function that needs the attribute.
    let e = pool.apply(plain, (1,)).unwrap_err();
    assert!(e.to_string().contains("plain"), "{e}");

    // The refusals sent nothing: the pool still runs real jobs.
    assert_eq!(pool.apply(zero, ()).unwrap().1, "zero");
}

#[test]
fn a_closure_is_not_a_job() {
    let add_one = |x: u64| x + 1;
    let nothing = || 5u8;
    let pool = mp::Pool::new(2).unwrap();
    assert_not_a_job(pool.apply(add_one, (1,)), "apply");
    assert_not_a_job(pool.apply(nothing, ()), "apply, no arguments");
    assert_not_a_job(pool.map(add_one, 0..4), "map");
    let first = pool
        .imap(add_one, 0..4)
        .next()
        .expect("imap yields the error");
    assert_not_a_job(first, "imap");
    assert_not_a_job(mp::Process::spawn(add_one, (1,)), "Process::spawn");
    assert_not_a_job(
        mp::Process::spawn(nothing, ()),
        "Process::spawn, no arguments",
    );
    let built = mp::Pool::builder()
        .processes(1)
        .initializer(nothing, ())
        .build();
    assert_not_a_job(built, "Pool::builder().initializer(..).build()");

    assert_eq!(
        pool.map(mirror, vec![point(1, 0, None)]).unwrap(),
        vec![point(0, 1, None)]
    );
}

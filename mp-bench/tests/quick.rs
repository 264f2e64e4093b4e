//! Smoke test of the benchmark tool: `--quick` with one repetition runs every
//! scenario (the Python side too when `python3` is on the `PATH`) and every
//! one of them produces a number, and so does the Rust peer (procspawn) on
//! the scenarios it has an equivalent for. The cluster scenarios run under
//! `mpirun` where it exists: their Python side (mpi4py.futures) must produce
//! a number wherever `mpirun` and mpi4py are installed, and is reported as
//! skipped elsewhere. No figure is judged: this checks that the tool and the
//! scenarios work, not how fast anything is.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn python_present() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// `mpirun` is on the `PATH`: the cluster scenarios run.
fn mpirun_present() -> bool {
    succeeds(Command::new("mpirun").arg("--version"))
}

/// mpi4py.futures for `python3`: the cluster scenarios' Python side can run.
fn mpi4py_present() -> bool {
    succeeds(Command::new("python3").args(["-c", "import mpi4py.futures"]))
}

/// The median of a side that must have run.
fn median(outcome: &Value, what: &str) -> f64 {
    assert_eq!(outcome["status"], "ok", "{what}: {outcome}");
    let m = outcome["median"].as_f64().unwrap_or(f64::NAN);
    assert!(m.is_finite() && m > 0.0, "{what}: median {m}");
    let samples = outcome["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 1, "{what}: one repetition asked");
    m
}

#[test]
fn quick_run_measures_every_scenario() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mp-bench-quick-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let json = out.join("results.json");
    let python = python_present();
    let mpirun = mpirun_present();
    let mpi4py = python && mpirun && mpi4py_present();
    // The mp side of the cluster scenarios needs mp-bench's `mpi` feature.
    let mp_cluster = mpirun && cfg!(feature = "mpi");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mp-bench"));
    cmd.args(["--quick", "--reps", "1", "--out-dir"])
        .arg(&out)
        .arg("--json")
        .arg(&json);
    if !python {
        eprintln!("python3 not found: the Python side is skipped");
        cmd.arg("--no-python");
    }
    let run = cmd.output().expect("run mp-bench");
    assert!(
        run.status.success(),
        "mp-bench --quick failed ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let run: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(run["quick"], true);
    let scenarios = run["scenarios"].as_array().expect("scenarios");
    let listed = Command::new(env!("CARGO_BIN_EXE_mp-bench"))
        .arg("--list")
        .output()
        .expect("mp-bench --list");
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(
        scenarios.len(),
        listed.lines().count(),
        "every scenario ran"
    );

    let mut mp_figures = 0;
    let mut procspawn_figures = 0;
    let mut cluster_rows = 0;
    for s in scenarios {
        let id = s["id"].as_str().expect("id");
        let line = listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("{id} not listed"));
        if line.contains("(cluster: under mpirun)") {
            cluster_rows += 1;
            if mp_cluster {
                median(&s["mp"], &format!("{id} mp"));
                mp_figures += 1;
            } else {
                assert_eq!(s["mp"]["status"], "skipped", "{id} mp");
                assert!(s["mp"]["reason"].is_string(), "{id}");
            }
            let pythons = s["python"].as_array().expect("python");
            assert_eq!(pythons.len(), 1, "{id}: one mpi4py.futures side");
            assert_eq!(pythons[0]["start_method"], "mpi4py.futures", "{id}");
            let outcome = &pythons[0]["outcome"];
            if mpi4py {
                median(outcome, &format!("{id} mpi4py.futures"));
            } else {
                assert_eq!(outcome["status"], "skipped", "{id} mpi4py.futures");
            }
            assert!(s["procspawn"].is_null(), "{id}");
            continue;
        }
        match s["mp"]["status"].as_str() {
            Some("not_available") => {
                assert!(
                    listed
                        .lines()
                        .any(|l| l.starts_with(id) && l.contains("not yet available"))
                );
            }
            _ => {
                median(&s["mp"], &format!("{id} mp"));
                mp_figures += 1;
            }
        }
        // The Rust peer (procspawn, Unix only) on the scenarios it has an
        // equivalent for, and only there.
        let peer = &s["procspawn"];
        if cfg!(unix) && ["apply", "map_chunksize1"].contains(&id) {
            median(peer, &format!("{id} procspawn"));
            procspawn_figures += 1;
        } else {
            assert!(peer.is_null(), "{id}: unexpected procspawn figure {peer}");
        }
        let pythons = s["python"].as_array().expect("python");
        assert!(!pythons.is_empty(), "{id}: no Python twin");
        for p in pythons {
            let what = format!("{id} python {}", p["start_method"]);
            if python {
                median(&p["outcome"], &what);
            } else {
                assert_eq!(p["outcome"]["status"], "skipped", "{what}");
            }
        }
        for b in s["baselines"].as_array().expect("baselines") {
            median(&b["outcome"], &format!("{id} baseline {}", b["title"]));
        }
    }
    assert_eq!(cluster_rows, 6, "cluster scenarios");
    let cluster = &run["cluster"];
    if mpirun {
        let text = cluster["Ok"]
            .as_str()
            .unwrap_or_else(|| panic!("{cluster}"));
        assert!(!mpi4py || text.contains("mpi4py"), "{text}");
        // Two launches: 3 ranks, and 2 for the pair scenario.
        assert!(
            text.contains("3 ranks under") && text.contains("2 ranks under"),
            "{text}"
        );
        assert!(!mp_cluster || text.contains("mp::mpi"), "{text}");
    } else {
        assert!(cluster["Err"].is_string(), "{cluster}");
    }
    assert!(
        mp_figures >= 8,
        "only {mp_figures} scenarios have an mp figure"
    );

    if cfg!(unix) {
        assert_eq!(procspawn_figures, 2, "procspawn figures");
    }

    let md = std::fs::read_to_string(out.join("benchmarks.md")).unwrap();
    assert!(md.contains("Quick run"));
    assert!(md.contains("procspawn (Rust peer)"));
    for s in scenarios {
        let title = s["title"]
            .as_str()
            .unwrap()
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(md.contains(&title), "{title} missing from the report");
    }
    let svg = std::fs::read_to_string(out.join("benchmarks.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
    std::fs::remove_dir_all(&out).unwrap();
}

//! Bad input gets a one-line message naming what was wrong and a distinct
//! exit code (README.md lists them), never a panic.

use std::{os::unix::process::CommandExt, process::Command};

use profiler_tests::{Fixture, profiler_bin, require_root, run_profiler, scratch};

const LIFECYCLE: &str = env!("CARGO_BIN_EXE_lifecycle");

fn check(args: &[&str], code: i32, needles: &[&str]) {
    let out = run_profiler(args);
    assert_eq!(out.status.code(), Some(code), "profiler {args:?}: {out:?}");
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "profiler {args:?}: stderr lacks {n:?}:\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn bad_pids() {
    check(&["attach", "--pid", "0"], 2, &["invalid --pid 0"]);
    check(&["attach", "--pid", "-7"], 2, &["invalid --pid -7"]);
    check(&["attach", "--pid", "abc"], 2, &["'abc'", "--pid"]);
    check(
        &["attach", "--pid", "2147483647"],
        3,
        &["no process with pid 2147483647"],
    );
    // kthreadd.
    check(&["attach", "--pid", "2"], 3, &["kernel thread"]);
}

#[test]
fn bad_durations() {
    for d in ["abc", "0", "-1s", "10x"] {
        check(
            &["attach", "--pid", "1", "--duration", d],
            2,
            &["--duration", &format!("'{d}'")],
        );
    }
}

#[test]
fn output_directory_that_cannot_be_created() {
    let fx = Fixture::start(LIFECYCLE, &[]);
    let dir = scratch("badout");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    check(
        &[
            "attach",
            "--pid",
            &fx.pid().to_string(),
            "--output",
            file.to_str().unwrap(),
        ],
        6,
        &["output directory", "not a directory"],
    );
    let nested = file.join("sub");
    check(
        &[
            "attach",
            "--pid",
            &fx.pid().to_string(),
            "--output",
            nested.to_str().unwrap(),
        ],
        6,
        &["output directory", "cannot create"],
    );
}

#[test]
fn without_privileges_names_the_capabilities_and_sudo() {
    require_root();
    let fx = Fixture::start(LIFECYCLE, &[]);
    let out = Command::new(profiler_bin())
        .args(["attach", "--pid", &fx.pid().to_string(), "--duration", "1s"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    for n in ["CAP_BPF", "CAP_PERFMON", "sudo"] {
        assert!(stderr.contains(n), "stderr lacks {n}: {stderr}");
    }
}

//! End-to-end: `profiler report` and `profiler diff` on recorded profiles.

use std::{fs, path::PathBuf};

use profiler_tests::{require_root, run_profiler, scratch};

const STACKS: &str = env!("CARGO_BIN_EXE_stacks");

fn record_runs(dir: &std::path::Path, label: &str, work: &str, runs: usize) -> Vec<PathBuf> {
    (0..runs)
        .map(|i| {
            let out = dir.join(format!("{label}-{i}"));
            let res = run_profiler(&[
                "record",
                "-q",
                "-F",
                "499",
                "--output",
                out.to_str().unwrap(),
                "--",
                STACKS,
                "work",
                work,
            ]);
            assert!(res.status.success(), "{res:?}");
            out.join("profile.json")
        })
        .collect()
}

#[test]
fn diff_fails_on_doubled_work_naming_the_function_and_passes_on_equal_work() {
    require_root();
    let dir = scratch("diff-e2e");
    let base = record_runs(&dir, "base", "1", 5);
    let same = record_runs(&dir, "same", "1", 5);
    let double = record_runs(&dir, "double", "2", 5);
    let arg = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    let md = dir.join("summary.md");
    let mut args: Vec<String> = vec!["diff".into(), "--base".into()];
    args.extend(arg(&base));
    args.push("--new".into());
    args.extend(arg(&double));
    args.extend([
        "--markdown".into(),
        md.to_str().unwrap().into(),
        "--output".into(),
        dir.join("flames").to_str().unwrap().into(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let res = run_profiler(&a);
    assert_eq!(
        res.status.code(),
        Some(1),
        "doubled work must fail: {res:?}"
    );
    assert!(
        res.stdout.contains("REGRESSED") && res.stdout.contains("on_cpu"),
        "{}",
        res.stdout
    );
    let functions = res
        .stdout
        .split("functions whose on-CPU time grew most")
        .nth(1)
        .unwrap_or("");
    assert!(
        functions.contains("burn_work"),
        "names the function that grew:\n{}",
        res.stdout
    );
    assert!(
        res.stdout.contains("p=0.008"),
        "5 vs 5 fully separated: {}",
        res.stdout
    );
    assert!(fs::read_to_string(&md).unwrap().contains("burn_work"));
    let svg = fs::read_to_string(dir.join("flames/diff-oncpu.svg")).unwrap();
    assert!(svg.contains("burn_work"));

    let mut args: Vec<String> = vec!["diff".into(), "--base".into()];
    args.extend(arg(&base));
    args.push("--new".into());
    args.extend(arg(&same));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let res = run_profiler(&a);
    assert_eq!(
        res.status.code(),
        Some(0),
        "equal work must pass: {}",
        res.stdout
    );
    assert!(res.stdout.contains("PASS"));

    // Directories of runs work too, and report re-renders a profile alone.
    let again = dir.join("again");
    let res = run_profiler(&[
        "report",
        base[0].to_str().unwrap(),
        "--output",
        again.to_str().unwrap(),
        "-q",
    ]);
    assert!(res.status.success(), "{res:?}");
    let original = base[0].parent().unwrap();
    for f in [
        "report.txt",
        "oncpu.folded",
        "offcpu.folded",
        "oncpu.svg",
        "offcpu.svg",
        "profile.json",
    ] {
        assert_eq!(
            fs::read(original.join(f)).unwrap(),
            fs::read(again.join(f)).unwrap(),
            "{f} re-rendered from profile.json alone differs"
        );
    }
}

#[test]
fn bad_profiles_get_a_clear_message_and_exit_2() {
    let dir = scratch("diff-bad");
    let cases = [
        ("empty.json", "", "is empty"),
        (
            "trunc.json",
            "{\"format\": \"profiler/1\", \"threads\": [",
            "truncated",
        ),
        (
            "foreign.json",
            "{\"traceEvents\": []}",
            "not a profiler profile",
        ),
        (
            "future.json",
            "{\"format\": \"profiler/9\"}",
            "newer than this profiler reads",
        ),
        (
            "types.json",
            "{\"format\": \"profiler/1\", \"threads\": \"no\"}",
            "invalid content",
        ),
        ("garbage.json", "\u{0}\u{1}binary", "not JSON"),
    ];
    for (name, text, needle) in cases {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        let ps = p.to_str().unwrap();
        for args in [vec!["report", ps], vec!["diff", ps, ps]] {
            let res = run_profiler(&args);
            assert_eq!(res.status.code(), Some(2), "{args:?}: {res:?}");
            assert!(
                res.stderr.contains(needle),
                "{args:?}: stderr lacks {needle:?}: {}",
                res.stderr
            );
            assert!(!res.stderr.contains("panicked"));
        }
    }
    let res = run_profiler(&["report", dir.join("missing.json").to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(2));
    assert!(res.stderr.contains("missing.json"));
    let res = run_profiler(&["diff", "--max-increase", "bogus"]);
    assert_eq!(res.status.code(), Some(2));
}

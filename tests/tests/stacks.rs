//! End-to-end: stacks, symbols, flamegraphs, and `profiler record`, as root.

use std::{collections::HashMap, fs, path::Path};

use profiler::profile::Profile;
use profiler_tests::{assert_near, require_root, run_profiler, scratch};

const STACKS: &str = env!("CARGO_BIN_EXE_stacks");
const MS: u64 = 1_000_000;

fn record(name: &str, extra: &[&str], mode: &[&str]) -> (Profile, std::path::PathBuf) {
    let out = scratch(name);
    let mut args = vec!["record", "--output", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push("--");
    args.push(STACKS);
    args.extend_from_slice(mode);
    let res = run_profiler(&args);
    assert!(res.status.success(), "profiler {args:?}: {res:?}");
    let p: Profile = serde_json::from_slice(&fs::read(out.join("profile.json")).unwrap()).unwrap();
    (p, out)
}

fn tid_of(p: &Profile, name: &str) -> u32 {
    p.threads
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no thread {name}: {:?}",
                p.threads.iter().map(|t| &t.name).collect::<Vec<_>>()
            )
        })
        .tid
}

fn has_frame(p: &Profile, stack: u32, needle: &str) -> bool {
    p.stack_frames(stack)
        .iter()
        .any(|f| f.name.contains(needle))
}

/// Parses folded lines into (stack, count), failing on malformed ones.
fn parse_folded(path: &Path) -> Vec<(String, u64)> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let (stack, n) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad folded line {l:?}"));
            (
                stack.to_string(),
                n.parse().unwrap_or_else(|_| panic!("bad count in {l:?}")),
            )
        })
        .collect()
}

fn valid_svg(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(&text, opts)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    text
}

#[test]
fn on_cpu_samples_name_the_burning_functions() {
    require_root();
    let (p, out) = record("burn", &["--freq", "499"], &["burn"]);
    assert_eq!(
        p.window.end_reason, "target_exited",
        "symbolized after the target exited"
    );
    assert_eq!(p.sampling.freq_hz, 499);
    // Stack walks can fail under load (counted, shown); nothing else may be
    // lost, and failed walks stay rare.
    assert_eq!(p.totals.lost_events, p.lost.stacks, "{:?}", p.lost);
    assert!(
        p.lost.stacks * 50 <= p.sampling.samples.max(1),
        "{:?} of {} samples",
        p.lost,
        p.sampling.samples
    );
    for (thread, func, cpu_ms) in [
        ("spin-alpha", "burn_alpha", 400),
        ("spin-beta", "burn_beta", 200),
    ] {
        let tid = tid_of(&p, thread);
        let samples: Vec<_> = p.oncpu.iter().filter(|s| s.tid == tid).collect();
        let total: u64 = samples.iter().map(|s| s.count).sum();
        let inside: u64 = samples
            .iter()
            .filter(|s| has_frame(&p, s.stack, func))
            .map(|s| s.count)
            .sum();
        assert!(
            inside * 100 >= total * 90,
            "{thread}: {inside}/{total} samples under {func}"
        );
        // Samples agree with frequency x CPU time within 15%.
        let on_cpu = p.threads.iter().find(|t| t.tid == tid).unwrap().on_cpu_ns;
        assert_near(
            &format!("{thread} on CPU"),
            on_cpu,
            cpu_ms * MS,
            0.05,
            10 * MS,
        );
        let expected = 499 * on_cpu / 1_000_000_000;
        let diff = total.abs_diff(expected);
        assert!(
            diff * 100 <= expected * 15,
            "{thread}: {total} samples, expected {expected} ± 15%"
        );
    }
    let folded = parse_folded(&out.join("oncpu.folded"));
    assert!(
        folded
            .iter()
            .any(|(s, _)| s.starts_with("spin-alpha;") && s.contains("burn_alpha"))
    );
    let svg = valid_svg(&out.join("oncpu.svg"));
    assert!(svg.contains("burn_alpha") && svg.contains("burn_beta"));
    assert!(svg.contains("On-CPU"), "title");
}

#[test]
fn off_cpu_time_is_under_the_waiting_functions_with_the_syscall() {
    require_root();
    let (p, out) = record("wait", &[], &["wait"]);
    for (thread, func, syscall) in [
        ("sleepy", "sleep_in_nanosleep", "clock_nanosleep"),
        ("blocky", "block_in_read", "read"),
    ] {
        let tid = tid_of(&p, thread);
        let under: u64 = p
            .offcpu
            .iter()
            .filter(|s| {
                s.tid == tid
                    && has_frame(&p, s.stack, func)
                    && s.syscall.as_deref() == Some(syscall)
            })
            .map(|s| s.total_ns)
            .sum();
        assert_near(
            &format!("{thread} off CPU under {func} in {syscall}"),
            under,
            300 * MS,
            0.10,
            0,
        );
    }
    let folded = parse_folded(&out.join("offcpu.folded"));
    let read_us: u64 = folded
        .iter()
        .filter(|(s, _)| {
            s.starts_with("blocky;") && s.contains("block_in_read;") && s.contains("[syscall read]")
        })
        .map(|(_, n)| n)
        .sum();
    assert_near("blocky folded µs", read_us * 1000, 300 * MS, 0.10, 0);
    let svg = valid_svg(&out.join("offcpu.svg"));
    for needle in [
        "block_in_read",
        "sleep_in_nanosleep",
        "[syscall read]",
        "[syscall clock_nanosleep]",
        "Off-CPU",
    ] {
        assert!(svg.contains(needle), "offcpu.svg lacks {needle}");
    }
    let report = fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(
        report.contains("block_in_read"),
        "report names the blocking function:\n{report}"
    );
}

#[test]
fn record_catches_a_thread_created_in_the_first_millisecond() {
    require_root();
    let (p, _) = record("early", &[], &["early"]);
    let t = p
        .threads
        .iter()
        .find(|t| t.name == "early-bird")
        .expect("early-bird seen");
    let main = p.threads.iter().find(|t| t.tid == p.target.pid).unwrap();
    assert_eq!(t.parent_tid, Some(main.tid));
    assert!(t.exited_ns.is_some());
    // Its creation stack names who made it. Frame-pointer walks stop in
    // glibc (built without frame pointers), so only the innermost frame,
    // glibc's clone3, is certain here.
    let c = t.creation_stack.expect("creation stack");
    let frames = p.stack_frames(c);
    assert_eq!(
        frames.last().map(|f| f.name.as_str()),
        Some("clone3"),
        "{frames:?}"
    );
    assert!(
        frames.iter().all(|f| f.name != "[unknown]"),
        "walk cut at the first unmapped address: {frames:?}"
    );
    assert_eq!(p.target.comm, "stacks");
    assert!(p.target.exe.ends_with("/stacks"), "{}", p.target.exe);
    let names: HashMap<u32, &str> = p.threads.iter().map(|t| (t.tid, t.name.as_str())).collect();
    assert_eq!(names.get(&p.target.pid), Some(&"stacks"));
}

#[test]
fn record_exits_with_the_commands_status() {
    require_root();
    let res = run_profiler(&["record", "-q", "--", STACKS, "exit", "3"]);
    assert_eq!(res.status.code(), Some(3), "{res:?}");
    let res = run_profiler(&[
        "record",
        "-q",
        "--ignore-exit-status",
        "--json",
        "--",
        STACKS,
        "exit",
        "3",
    ]);
    assert_eq!(res.status.code(), Some(0), "{res:?}");
    let p: Profile = serde_json::from_str(&res.stdout).unwrap();
    assert_eq!(p.command.as_ref().and_then(|c| c.exit_code), Some(3));
    let res = run_profiler(&["record", "--", "/nonexistent/command"]);
    assert_eq!(res.status.code(), Some(127), "{res:?}");
    assert!(
        res.stderr.contains("cannot run '/nonexistent/command'"),
        "{}",
        res.stderr
    );
}

#[test]
fn pprof_files_are_read_by_go_tool_pprof() {
    require_root();
    let (_, out) = record("pprof", &["--freq", "499"], &["burn"]);
    let top = |file: &str| {
        let o = std::process::Command::new("go")
            .args(["tool", "pprof", "-top"])
            .arg(out.join(file))
            .output()
            .expect("go tool pprof (Go is installed by cargo xtask setup)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let on = top("profile.pb.gz");
    assert!(
        on.contains("Type: cpu") && on.contains("stacks::spin"),
        "{on}"
    );
    let (_, out2) = record("pprof-off", &[], &["wait"]);
    let o = std::process::Command::new("go")
        .args(["tool", "pprof", "-top", "-tagfocus=syscall=read"])
        .arg(out2.join("offcpu.pb.gz"))
        .output()
        .unwrap();
    let off = String::from_utf8_lossy(&o.stdout);
    assert!(
        off.contains("Type: offcpu") && off.contains("block_in_read"),
        "{off}"
    );
}

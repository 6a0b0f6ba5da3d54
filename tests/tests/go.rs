//! End-to-end on Go programs (built with Debian's golang-go), as root:
//! Go symbols, and the Go X-ray (thread roles, explanation), on normal and
//! stripped (`-ldflags="-s -w"`) builds.

use std::{collections::BTreeMap, fs, path::Path, process::Command, time::Duration};

use profiler::profile::Profile;
use profiler_tests::{Profiler, go_fixture, require_root, run_profiler, scratch};

fn record_go(
    name: &str,
    bin: &Path,
    args: &[&str],
    gomaxprocs: Option<&str>,
    freq: &str,
) -> Profile {
    let out = scratch(name);
    let mut a = vec![
        "record",
        "-q",
        "-F",
        freq,
        "--output",
        out.to_str().unwrap(),
        "--",
    ];
    let gm;
    if let Some(n) = gomaxprocs {
        gm = format!("GOMAXPROCS={n}");
        a.extend_from_slice(&["env", gm.as_str()]);
    }
    a.push(bin.to_str().unwrap());
    a.extend_from_slice(args);
    let res = run_profiler(&a);
    assert!(res.status.success(), "{res:?}");
    serde_json::from_slice(&fs::read(out.join("profile.json")).unwrap()).unwrap()
}

fn frame_names(p: &Profile, stack: u32) -> Vec<String> {
    p.stack_frames(stack)
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

/// Dominant role per thread.
fn roles(p: &Profile) -> BTreeMap<u32, String> {
    p.threads
        .iter()
        .map(|t| {
            (
                t.tid,
                t.role
                    .as_ref()
                    .map(|r| r.dominant.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn has_share(p: &Profile, role: &str) -> bool {
    p.threads
        .iter()
        .filter_map(|t| t.role.as_ref())
        .any(|r| r.shares.iter().any(|s| s.role.contains(role)))
}

/// "N OS threads: a x, b y, ..." must count every thread seen.
fn check_explanation_counts(p: &Profile) {
    let rt = p.runtime.as_ref().expect("Go runtime recognized");
    let e = &rt.explanation;
    let n = p.threads.len();
    assert!(e.contains(&format!("{n} OS threads:")), "{e}");
    let list = e
        .split(" OS threads: ")
        .nth(1)
        .unwrap()
        .split(". ")
        .next()
        .unwrap();
    let sum: usize = list
        .split(", ")
        .filter_map(|part| part.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(sum, n, "explanation counts vs threads seen: {e}");
}

#[test]
fn go_stacks_have_go_function_names_and_sysmon() {
    require_root();
    for stripped in [false, true] {
        let bin = go_fixture("gofix", stripped);
        let p = record_go("go-idle", &bin, &["idle", "1"], None, "99");
        let sysmon: Vec<u32> = p
            .offcpu
            .iter()
            .filter(|s| {
                frame_names(&p, s.stack)
                    .iter()
                    .any(|f| f == "runtime.sysmon")
            })
            .map(|s| s.tid)
            .collect();
        assert!(
            !sysmon.is_empty(),
            "stripped={stripped}: no off-CPU stack under runtime.sysmon"
        );
        let all: Vec<String> = p.frames.iter().map(|f| f.name.clone()).collect();
        for f in ["runtime.mstart", "runtime.futex"] {
            assert!(
                all.iter().any(|n| n == f),
                "stripped={stripped}: frame {f} missing from {all:?}"
            );
        }
        let created: Vec<_> = p.threads.iter().filter_map(|t| t.creation_stack).collect();
        assert!(!created.is_empty());
        assert!(
            created
                .iter()
                .all(|&c| frame_names(&p, c).iter().any(|f| f == "runtime.newm"))
        );
    }
}

#[test]
fn gomaxprocs_1_idle_program_has_m0_one_sysmon_and_idle_ms() {
    require_root();
    for stripped in [false, true] {
        let bin = go_fixture("gofix", stripped);
        let p = record_go("go-roles-idle", &bin, &["idle", "1"], Some("1"), "99");
        let rt = p.runtime.as_ref().expect("runtime");
        assert_eq!(rt.kind, "go");
        assert!(rt.go_version.starts_with("go1."), "{}", rt.go_version);
        assert_eq!(rt.module, "example.com/profiler/gofix");
        assert_eq!(rt.gomaxprocs, 1);
        assert!(rt.gomaxprocs_source.contains("environment"));
        assert!(!rt.cgo);
        let r = roles(&p);
        assert_eq!(
            r.values().filter(|v| *v == "sysmon").count(),
            1,
            "stripped={stripped}: {r:?}"
        );
        let m0 = p.threads.iter().find(|t| t.tid == p.target.pid).unwrap();
        assert!(m0.role.as_ref().unwrap().main_thread);
        assert!(
            r.values()
                .any(|v| v.starts_with("idle M") || v == "netpoller wait"),
            "stripped={stripped}: no idle M in {r:?}"
        );
        // Every role comes with the frames that decided it.
        for t in &p.threads {
            for s in &t.role.as_ref().unwrap().shares {
                assert!(s.role == "unknown" || !s.evidence.is_empty(), "{s:?}");
            }
        }
        check_explanation_counts(&p);
        assert!(rt.explanation.contains("GOMAXPROCS=1"));
    }
}

#[test]
fn blocking_syscalls_are_identified_and_new_ms_explained() {
    require_root();
    for stripped in [false, true] {
        let bin = go_fixture("gofix", stripped);
        let p = record_go("go-roles-sys", &bin, &["syscalls", "1"], Some("1"), "99");
        let r = roles(&p);
        for sc in ["read", "nanosleep"] {
            assert!(
                r.values()
                    .any(|v| v == &format!("M blocked in syscall {sc}(2)")),
                "stripped={stripped}: no M blocked in {sc}: {r:?}"
            );
        }
        let rt = p.runtime.as_ref().unwrap();
        assert!(rt.handoff_seen, "runtime.handoffp seen");
        assert!(
            rt.created
                .iter()
                .any(|c| c.cause.contains("handed its P off")),
            "stripped={stripped}: {:?}",
            rt.created
        );
        assert!(
            rt.explanation.contains("blocked in read(2)"),
            "{}",
            rt.explanation
        );
        check_explanation_counts(&p);
    }
}

#[test]
fn gc_heavy_program_shows_gc_workers() {
    require_root();
    for stripped in [false, true] {
        let bin = go_fixture("gofix", stripped);
        let p = record_go("go-roles-gc", &bin, &["gc", "1.5"], None, "999");
        assert!(
            has_share(&p, "GC background worker"),
            "stripped={stripped}: {:#?}",
            roles(&p)
        );
    }
}

#[test]
fn cgo_program_shows_threads_running_c_code() {
    require_root();
    for stripped in [false, true] {
        let bin = go_fixture("gocgo", stripped);
        let p = record_go("go-roles-cgo", &bin, &["1"], None, "99");
        assert!(p.runtime.as_ref().unwrap().cgo, "cgo detected");
        assert!(
            has_share(&p, "cgo"),
            "stripped={stripped}: {:#?}",
            p.threads
        );
        check_explanation_counts(&p);
    }
}

#[test]
fn attach_names_roles_of_threads_parked_since_before_attach() {
    require_root();
    let bin = go_fixture("gofix", false);
    let mut child = Command::new(&bin)
        .args(["idle", "20"])
        .env("GOMAXPROCS", "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut prof = Profiler::start(&[
        "attach",
        "--pid",
        &child.id().to_string(),
        "-d",
        "1s",
        "--json",
    ]);
    prof.wait_recording(Duration::from_secs(60));
    let res = prof.finish(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    assert!(res.status.success(), "{res:?}");
    let p: Profile = serde_json::from_str(&res.stdout).unwrap();
    let r = roles(&p);
    assert_eq!(r.values().filter(|v| *v == "sysmon").count(), 1, "{r:?}");
    assert!(
        r.values()
            .any(|v| v.starts_with("idle M") || v == "netpoller wait"),
        "{r:?}"
    );
    assert!(
        !r.values().any(|v| v == "unknown"),
        "every thread parked since before attach is named: {r:?}"
    );
    check_explanation_counts(&p);
}

#[test]
fn non_go_programs_get_no_go_roles() {
    require_root();
    let out = scratch("nongo");
    let res = run_profiler(&[
        "record",
        "-q",
        "--output",
        out.to_str().unwrap(),
        "--",
        env!("CARGO_BIN_EXE_stacks"),
        "wait",
    ]);
    assert!(res.status.success(), "{res:?}");
    let p: Profile = serde_json::from_slice(&fs::read(out.join("profile.json")).unwrap()).unwrap();
    assert!(p.runtime.is_none());
    let r = roles(&p);
    assert_eq!(
        r.values().filter(|v| v.contains("named thread")).count(),
        2,
        "{r:?}"
    );
    for v in r.values() {
        for go in ["sysmon", "idle M", "GC", "netpoller", " M "] {
            assert!(!v.contains(go), "Go role {v} on a non-Go program");
        }
    }
    let report = fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(!report.contains("GO RUNTIME"));
}

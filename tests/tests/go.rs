//! End-to-end on Go programs (built with Debian's golang-go), as root.

use std::fs;

use profiler::profile::Profile;
use profiler_tests::{go_fixture, require_root, run_profiler, scratch};

fn record_go(name: &str, bin: &std::path::Path, args: &[&str]) -> Profile {
    let out = scratch(name);
    let mut a = vec![
        "record",
        "-q",
        "--output",
        out.to_str().unwrap(),
        "--",
        bin.to_str().unwrap(),
    ];
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

#[test]
fn go_stacks_have_go_function_names_and_sysmon() {
    require_root();
    let bin = go_fixture("gofix", false);
    let p = record_go("go-idle", &bin, &["idle", "1"]);
    // Some thread spends its off-CPU time under runtime.sysmon.
    let sysmon_tids: Vec<u32> = p
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
        !sysmon_tids.is_empty(),
        "no off-CPU stack under runtime.sysmon: {:#?}",
        p.offcpu
    );
    // The main goroutine sleeps in time.Sleep on M0... in Go terms, parked.
    let all: Vec<String> = p.frames.iter().map(|f| f.name.clone()).collect();
    for f in ["runtime.main", "runtime.mstart", "runtime.futex"] {
        assert!(all.iter().any(|n| n == f), "frame {f} missing from {all:?}");
    }
    // Threads created by the runtime name runtime.newm.
    let created: Vec<_> = p.threads.iter().filter_map(|t| t.creation_stack).collect();
    assert!(!created.is_empty());
    assert!(
        created
            .iter()
            .all(|&c| frame_names(&p, c).iter().any(|f| f == "runtime.newm"))
    );
}

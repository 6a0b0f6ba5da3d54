//! End-to-end: `profiler attach` on fixtures with known behaviour, as root.

use std::{fs, time::Duration};

use profiler::profile::{Profile, Thread};
use profiler_tests::{
    Fixture, Profiler, assert_near, proc_switches, require_root, scratch, wait_all_sleeping,
};
use serde_json::Value;

const LIFECYCLE: &str = env!("CARGO_BIN_EXE_lifecycle");
const MS: u64 = 1_000_000;

fn thread<'a>(p: &'a Profile, name: &str) -> &'a Thread {
    p.threads
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no thread named {name} in {:#?}", p.threads))
}

fn syscall_total(t: &Thread, name: &str) -> u64 {
    t.syscalls
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("thread {} has no {name} syscall: {:?}", t.name, t.syscalls))
        .total_ns
}

/// One scenario of the lifecycle fixture inside a 2.5 s recording.
#[test]
fn lifecycle_fixture_numbers_are_right() {
    require_root();
    let mut fx = Fixture::start(LIFECYCLE, &[]);
    let pid = fx.pid();
    let out = scratch("lifecycle");
    wait_all_sleeping(pid, Duration::from_secs(10));
    let before = proc_switches(pid);
    let prof = Profiler::attach(pid, &out, &["--duration", "2500ms"]);
    fx.send("go");
    fx.expect_line("done", Duration::from_secs(10));
    let res = prof.finish(Duration::from_secs(30));
    let after = proc_switches(pid);
    assert!(res.status.success(), "profiler failed: {res:?}");

    let p: Profile =
        serde_json::from_slice(&fs::read(out.join("profile.json")).expect("profile.json"))
            .expect("profile.json parses");
    let report = fs::read_to_string(out.join("report.txt")).expect("report.txt");
    assert_eq!(p.format, "profiler/1");
    assert_eq!(p.target.pid, pid);
    assert_eq!(p.window.end_reason, "duration");
    assert_near("window", p.window.duration_ns, 2500 * MS, 0.0, 100 * MS);
    // Nothing lost but, under load, a rare failed stack walk (counted).
    assert_eq!(p.totals.lost_events, p.lost.stacks, "{:?}", p.lost);
    assert!(p.lost.stacks <= 2, "{:?}", p.lost);

    // Threads: main + 3 workers + 2 ephemeral ones.
    assert_eq!(p.totals.threads_seen, 6, "{:#?}", p.threads);
    assert_eq!(p.totals.threads_created, 2);
    assert_eq!(p.totals.threads_exited, 2);
    let main = p
        .threads
        .iter()
        .find(|t| t.tid == pid)
        .expect("main thread");
    assert_eq!(main.name, "lifecycle");
    for name in ["ephemeral-1", "ephemeral-2"] {
        let e = thread(&p, name);
        assert_eq!(e.parent_tid, Some(pid), "{name} created by main");
        assert_eq!(e.names, vec!["lifecycle".to_string(), name.to_string()]);
        let (c, x) = (e.created_ns.expect("created"), e.exited_ns.expect("exited"));
        assert_near(&format!("{name} lifetime"), x - c, 50 * MS, 0.1, 10 * MS);
        assert_near(
            &format!("{name} sleep"),
            syscall_total(e, "clock_nanosleep"),
            50 * MS,
            0.1,
            5 * MS,
        );
    }

    let sleeper = thread(&p, "sleeper");
    assert_near(
        "sleeper in clock_nanosleep",
        syscall_total(sleeper, "clock_nanosleep"),
        300 * MS,
        0.05,
        10 * MS,
    );
    // Parked in futex or sleeping: interruptible sleep all along but for
    // its few microseconds on CPU and waiting for one.
    assert_near(
        "sleeper sleeping",
        sleeper.sleeping_ns,
        p.window.duration_ns,
        0.01,
        0,
    );
    assert!(sleeper.blocked_ns == 0, "sleeper never in D state");

    let reader = thread(&p, "reader");
    assert_near(
        "reader in read",
        syscall_total(reader, "read"),
        300 * MS,
        0.05,
        15 * MS,
    );

    let burner = thread(&p, "burner");
    assert_near("burner on CPU", burner.on_cpu_ns, 300 * MS, 0.05, 10 * MS);

    // Times add up: on + off = time existed in the window, within 2%.
    for t in &p.threads {
        let existed = t.existed_ns(&p.window);
        assert_near(
            &format!("thread {} ({}) on+off", t.tid, t.name),
            t.on_cpu_ns + t.off_cpu_ns,
            existed,
            0.02,
            0,
        );
        assert!(t.complete, "thread {} incomplete", t.tid);
    }

    // Context switches match /proc deltas (threads alive throughout).
    for (tid, (v0, i0)) in &before {
        let Some((v1, i1)) = after.get(tid) else {
            continue;
        };
        let t = p
            .threads
            .iter()
            .find(|t| t.tid == *tid)
            .expect("thread in profile");
        assert_eq!(
            (t.voluntary_switches, t.involuntary_switches),
            (v1 - v0, i1 - i0),
            "switches of {} ({}) vs /proc",
            tid,
            t.name
        );
    }

    // The report names the threads and the blocking syscalls.
    for needle in [
        "sleeper",
        "reader",
        "burner",
        "ephemeral-1",
        "clock_nanosleep",
        "read",
        "SUMMARY",
    ] {
        assert!(report.contains(needle), "report lacks {needle}:\n{report}");
    }
    assert!(!report.contains('\x1b'), "no colour in files");
    assert_eq!(
        res.stdout, report,
        "stdout (not a terminal) is the plain report"
    );
}

#[test]
fn json_flag_prints_the_profile_with_the_documented_keys() {
    require_root();
    let fx = Fixture::start(LIFECYCLE, &[]);
    let res = profiler_tests::run_profiler(&[
        "attach",
        "-p",
        &fx.pid().to_string(),
        "-d",
        "300ms",
        "--json",
    ]);
    assert!(res.status.success(), "{res:?}");
    let v: Value = serde_json::from_str(&res.stdout).expect("stdout is JSON");
    assert_eq!(v["format"], "profiler/1");
    for k in ["pid", "comm", "exe"] {
        assert!(v["target"].get(k).is_some(), "target.{k}");
    }
    for k in ["start_ns", "end_ns", "duration_ns"] {
        assert!(v["window"][k].is_u64(), "window.{k}");
    }
    for k in [
        "threads_seen",
        "threads_created",
        "threads_exited",
        "on_cpu_ns",
        "off_cpu_ns",
        "context_switches",
        "lost_events",
    ] {
        assert!(v["totals"][k].is_u64(), "totals.{k}");
    }
    assert_eq!(v["threads"].as_array().map(Vec::len), Some(4));
    let t = &v["threads"][0];
    for k in [
        "tid",
        "name",
        "names",
        "parent_tid",
        "created_ns",
        "exited_ns",
        "on_cpu_ns",
        "runnable_ns",
        "sleeping_ns",
        "blocked_ns",
        "off_cpu_ns",
        "voluntary_switches",
        "involuntary_switches",
        "syscalls",
    ] {
        assert!(t.get(k).is_some(), "threads[].{k}");
    }
    // The parked workers are in futex the whole window.
    let futex = v["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "sleeper")
        .flat_map(|t| t["syscalls"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == "futex")
        .expect("sleeper parked in futex");
    assert_near(
        "parked in futex",
        futex["total_ns"].as_u64().unwrap(),
        300 * MS,
        0.1,
        30 * MS,
    );
}

/// Records the lifecycle fixture's phases until it exits, with `extra`
/// options.
fn record_lifecycle_to_exit(extra: &[&str]) -> Profile {
    let mut fx = Fixture::start(LIFECYCLE, &[]);
    let pid = fx.pid().to_string();
    let mut args = vec!["attach", "--pid", &pid, "--json"];
    args.extend_from_slice(extra);
    let mut prof = Profiler::start(&args);
    prof.wait_recording(Duration::from_secs(60));
    fx.send("go");
    fx.expect_line("done", Duration::from_secs(10));
    fx.send("exit");
    fx.wait(Duration::from_secs(5));
    let res = prof.finish(Duration::from_secs(10));
    assert!(res.status.success(), "{res:?}");
    serde_json::from_str(&res.stdout).expect("JSON")
}

#[test]
fn target_exiting_mid_recording_is_covered_until_its_exit() {
    require_root();
    let p = record_lifecycle_to_exit(&[]);
    assert_eq!(p.window.end_reason, "target_exited");
    assert_eq!(p.totals.threads_seen, 6);
    // Every thread exited, and each one's time adds up to its life.
    for t in &p.threads {
        assert!(
            t.exited_ns.is_some(),
            "thread {} ({}) exited",
            t.tid,
            t.name
        );
        assert_near(
            &format!("thread {} on+off", t.tid),
            t.on_cpu_ns + t.off_cpu_ns,
            t.existed_ns(&p.window),
            0.02,
            MS,
        );
    }
    let burner = thread(&p, "burner");
    assert_near("burner on CPU", burner.on_cpu_ns, 300 * MS, 0.05, 10 * MS);
}

#[test]
fn timeline_shows_the_known_phases() {
    require_root();
    let mut fx = Fixture::start(LIFECYCLE, &[]);
    let out = scratch("timeline");
    let prof = Profiler::attach(fx.pid(), &out, &["--duration", "1500ms", "--timeline"]);
    fx.send("go");
    fx.expect_line("done", Duration::from_secs(10));
    let res = prof.finish(Duration::from_secs(30));
    assert!(res.status.success(), "{res:?}");
    let p: Profile = serde_json::from_slice(&fs::read(out.join("profile.json")).unwrap()).unwrap();
    let tl = p.timeline.as_ref().expect("timeline recorded");
    assert_eq!((tl.lost, tl.capped), (0, 0));
    let tid = |n: &str| thread(&p, n).tid;
    let segs = |t: u32| tl.segments.iter().filter(move |s| s.tid == t);
    // The sleeper's 300 ms nanosleep is one sleeping segment.
    let nap = segs(tid("sleeper"))
        .find(|s| s.state == "sleeping" && s.syscall.as_deref() == Some("clock_nanosleep"))
        .expect("sleeper's nanosleep segment");
    assert_near(
        "sleeper nanosleep segment",
        nap.end_ns - nap.start_ns,
        300 * MS,
        0.05,
        5 * MS,
    );
    // The burner runs 300 ms in all.
    let ran: u64 = segs(tid("burner"))
        .filter(|s| s.state == "running")
        .map(|s| s.end_ns - s.start_ns)
        .sum();
    assert_near("burner running", ran, 300 * MS, 0.05, 10 * MS);
    // Segments of a thread cover its life without overlap.
    for t in &p.threads {
        let mut v: Vec<_> = segs(t.tid).collect();
        v.sort_by_key(|s| s.start_ns);
        for w in v.windows(2) {
            assert!(
                w[0].end_ns <= w[1].start_ns,
                "overlap in {}: {:?}",
                t.name,
                w
            );
        }
        let covered: u64 = v.iter().map(|s| s.end_ns - s.start_ns).sum();
        assert_near(
            &format!("{} timeline coverage", t.name),
            covered,
            t.existed_ns(&p.window),
            0.02,
            MS,
        );
    }
    // trace.json: valid trace events, one track per thread.
    let v: Value = serde_json::from_slice(&fs::read(out.join("trace.json")).unwrap()).unwrap();
    let ev = v["traceEvents"].as_array().unwrap();
    assert_eq!(
        ev.iter().filter(|e| e["name"] == "thread_name").count(),
        p.threads.len()
    );
    assert!(
        ev.iter()
            .all(|e| e["ph"] == "M" || (e["ph"] == "X" && e["dur"].as_f64().unwrap() >= 0.0))
    );
    let svg = fs::read_to_string(out.join("timeline.svg")).unwrap();
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(&svg, opts).expect("timeline.svg is valid XML");
    for n in ["sleeper", "burner", "ephemeral-1", "clock_nanosleep"] {
        assert!(svg.contains(n), "timeline.svg lacks {n}");
    }
}

#[test]
fn measure_overhead_reports_what_each_kernel_program_cost() {
    require_root();
    let p = record_lifecycle_to_exit(&["--measure-overhead"]);
    let o = p.overhead.as_ref().expect("an overhead section");
    assert_eq!(
        o.cpus as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    let prog = |name: &str| {
        o.programs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("program {name} in {:?}", o.programs))
    };
    // The scheduler programs run for every switch and wakeup on the
    // machine, the target's among them.
    let sw = prog("sched_switch");
    assert!(
        sw.calls >= p.totals.context_switches,
        "sched_switch ran {} times for {} traced switches",
        sw.calls,
        p.totals.context_switches
    );
    assert!(prog("sched_wakeup").calls > 0);
    // Every thread the fixture created went through task_newtask.
    assert!(prog("task_newtask").calls >= p.totals.threads_created);
    for c in &o.programs {
        if let Some(per) = c.run_ns.checked_div(c.calls) {
            assert!(
                (1..50_000).contains(&per),
                "{}: {per} ns per call is not plausible",
                c.name
            );
        }
    }
    // Most expensive first, and shown in the report.
    assert!(o.programs.windows(2).all(|w| w[0].run_ns >= w[1].run_ns));
    let text = profiler::render::text::report(&p, &Default::default());
    assert!(text.contains("PROFILER OVERHEAD"), "{text}");
    assert!(text.contains("sched_switch"), "{text}");
}

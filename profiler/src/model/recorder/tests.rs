//! The model from recorded event sequences: no root, no BPF.

use super::*;
use crate::{
    model::{LiveThread, LostCounts, RawOffCpu, RawOnCpu, SyscallSample},
    symbolize::{Frame, Symbolize},
};

trait FinishWith {
    fn finish_with(self, s: StopState) -> crate::profile::Profile;
}

impl FinishWith for Recorder {
    fn finish_with(self, s: StopState) -> crate::profile::Profile {
        self.finish(s, &mut FakeSym)
    }
}

const START: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn target() -> TargetInfo {
    TargetInfo {
        pid: 100,
        comm: "app".into(),
        exe: "/usr/bin/app".into(),
        cmdline: vec!["app".into()],
        start_ticks: 42,
    }
}

fn initial(tid: u32, comm: &str) -> InitialThread {
    InitialThread {
        tid,
        tgid: 100,
        comm: comm.into(),
        stack: None,
    }
}

fn live(tid: u32, counters: Counters, open: Open) -> LiveThread {
    LiveThread {
        tid,
        tgid: 100,
        counters,
        open,
        dead: false,
        ustack: None,
        kstack: None,
        seeded: false,
        on_since: 0,
    }
}

fn stop(end_ms: u64, live: Vec<LiveThread>) -> StopState {
    StopState {
        end_ns: START + end_ms * MS,
        end_reason: "duration".into(),
        live,
        syscalls: vec![],
        lost: LostCounts::default(),
        kernel_events: 0,
        stacks: Default::default(),
        timeline: None,
        overhead: None,
    }
}

/// Names addresses `f<hex>` / `k<hex>` without any process.
struct FakeSym;

impl Symbolize for FakeSym {
    fn user(&mut self, _pid: u32, ips: &[u64]) -> Vec<Frame> {
        ips.iter()
            .map(|ip| Frame {
                name: format!("f{ip:x}"),
                module: "app".into(),
                kernel: false,
            })
            .collect()
    }
    fn kernel(&mut self, ips: &[u64]) -> Vec<Frame> {
        ips.iter()
            .map(|ip| Frame {
                name: format!("k{ip:x}"),
                module: "[kernel]".into(),
                kernel: true,
            })
            .collect()
    }
}

fn cpu(on_ms: u64) -> Counters {
    Counters {
        on_cpu_ns: on_ms * MS,
        ..Counters::default()
    }
}

#[test]
fn thread_alive_before_attach_is_closed_at_the_end() {
    let r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    // On CPU 300 ms so far, running again since 800 ms.
    let p = r.finish_with(stop(
        1000,
        vec![live(
            100,
            cpu(300),
            Open::OnCpu {
                since_ns: START + 800 * MS,
            },
        )],
    ));
    let t = &p.threads[0];
    assert_eq!(p.format, "profiler/1");
    assert_eq!(t.created_ns, None);
    assert_eq!(t.exited_ns, None);
    assert_eq!(t.on_cpu_ns, 500 * MS);
    assert_eq!(t.parent_tid, None);
    assert!(t.complete);
    assert_eq!(p.window.duration_ns, 1000 * MS);
    assert_eq!(p.totals.threads_seen, 1);
    assert_eq!(p.totals.threads_created, 0);
}

#[test]
fn off_cpu_interval_open_at_stop_splits_at_the_wakeup() {
    let r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    let open = Open::OffCpu {
        since_ns: START + 600 * MS,
        reason: OffReason::Sleeping,
        woken_ns: Some(START + 900 * MS),
        syscall: Some(0),
    };
    let mut s = stop(1000, vec![live(100, cpu(600), open)]);
    s.syscalls.push(SyscallSample {
        tid: 100,
        nr: 0,
        count: 2,
        total_ns: 50 * MS,
        max_ns: 40 * MS,
    });
    let p = Recorder::new(target(), START, 0, [initial(100, "app")]).finish(s, &mut FakeSym);
    drop(r);
    let t = &p.threads[0];
    assert_eq!(t.sleeping_ns, 300 * MS);
    assert_eq!(t.runnable_ns, 100 * MS);
    assert_eq!(t.off_cpu_ns, 400 * MS);
    assert_eq!(t.on_cpu_ns + t.off_cpu_ns, t.existed_ns(&p.window));
    assert_eq!(t.syscalls.len(), 1);
    assert_eq!(t.syscalls[0].name, crate::syscalls::name(0));
    assert_eq!(t.syscalls[0].count, 3);
    assert_eq!(t.syscalls[0].total_ns, 450 * MS);
    assert_eq!(t.syscalls[0].max_ns, 400 * MS);
}

#[test]
fn thread_created_and_exited_inside_the_window() {
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    r.push(Event::New {
        ts: START + 100 * MS,
        tid: 101,
        tgid: 100,
        parent_tid: 100,
        parent_tgid: 100,
        comm: "app".into(),
        process: false,
        stack: None,
        snapshot: None,
    });
    r.push(Event::Rename {
        ts: START + 101 * MS,
        tid: 101,
        comm: "worker".into(),
    });
    r.push(Event::Exit {
        ts: START + 400 * MS,
        tid: 101,
        comm: "worker".into(),
    });
    r.push(Event::Final {
        ts: START + 400 * MS + 5000,
        tid: 101,
        counters: Counters {
            on_cpu_ns: 250 * MS,
            runnable_ns: 50 * MS,
            voluntary: 3,
            involuntary: 7,
            ..Counters::default()
        },
    });
    let p = r.finish_with(stop(1000, vec![live(100, cpu(1000), Open::Closed)]));
    assert_eq!(p.threads.len(), 2);
    let w = &p.threads[1];
    assert_eq!(w.tid, 101);
    assert_eq!(w.name, "worker");
    assert_eq!(w.names, vec!["app".to_string(), "worker".to_string()]);
    assert_eq!(w.renames.len(), 1);
    assert_eq!(w.renames[0].at_ns, 101 * MS);
    assert_eq!(w.parent_tid, Some(100));
    assert_eq!(w.created_ns, Some(100 * MS));
    assert_eq!(w.exited_ns, Some(400 * MS));
    assert_eq!(w.on_cpu_ns + w.off_cpu_ns, w.existed_ns(&p.window));
    assert_eq!((w.voluntary_switches, w.involuntary_switches), (3, 7));
    assert!(w.complete);
    assert_eq!(p.totals.threads_created, 1);
    assert_eq!(p.totals.threads_exited, 1);
    assert_eq!(p.totals.context_switches, 10);
}

#[test]
fn out_of_order_records_across_cpus_are_applied_in_time_order() {
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    // The child's rename (CPU 1) reached the buffer before its creation
    // (CPU 0), and its exit before a later rename of the main thread.
    r.push(Event::Rename {
        ts: START + 20 * MS,
        tid: 101,
        comm: "io".into(),
    });
    r.push(Event::Exit {
        ts: START + 50 * MS,
        tid: 101,
        comm: "io".into(),
    });
    r.push(Event::New {
        ts: START + 10 * MS,
        tid: 101,
        tgid: 100,
        parent_tid: 100,
        parent_tgid: 100,
        comm: "app".into(),
        process: false,
        stack: None,
        snapshot: None,
    });
    r.push(Event::Final {
        ts: START + 50 * MS,
        tid: 101,
        counters: cpu(40),
    });
    let p = r.finish_with(stop(100, vec![live(100, cpu(100), Open::Closed)]));
    assert_eq!(p.threads.len(), 2, "{:#?}", p.threads);
    let t = &p.threads[1];
    assert_eq!(t.names, vec!["app".to_string(), "io".to_string()]);
    assert_eq!(t.created_ns, Some(10 * MS));
    assert_eq!(t.exited_ns, Some(50 * MS));
    assert!(t.complete);
}

#[test]
fn reused_tid_is_a_new_thread() {
    let mut r = Recorder::new(
        target(),
        START,
        0,
        [initial(100, "app"), initial(101, "old")],
    );
    r.push(Event::Exit {
        ts: START + 10 * MS,
        tid: 101,
        comm: "old".into(),
    });
    r.push(Event::Final {
        ts: START + 10 * MS,
        tid: 101,
        counters: cpu(10),
    });
    r.push(Event::New {
        ts: START + 20 * MS,
        tid: 101,
        tgid: 100,
        parent_tid: 100,
        parent_tgid: 100,
        comm: "new".into(),
        process: false,
        stack: None,
        snapshot: None,
    });
    let p = r.finish_with(stop(
        100,
        vec![
            live(100, cpu(100), Open::Closed),
            live(101, cpu(80), Open::Closed),
        ],
    ));
    let olds: Vec<_> = p.threads.iter().filter(|t| t.tid == 101).collect();
    assert_eq!(olds.len(), 2);
    assert_eq!(olds[0].name, "old");
    assert_eq!(olds[0].on_cpu_ns, 10 * MS);
    assert_eq!(olds[1].name, "new");
    assert_eq!(olds[1].on_cpu_ns, 80 * MS);
    assert_eq!(olds[1].created_ns, Some(20 * MS));
}

#[test]
fn lost_records_are_counted_and_mark_threads_incomplete() {
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    // The creation and exit records of 102 were lost; only its final
    // counters arrived.
    r.push(Event::Final {
        ts: START + 30 * MS,
        tid: 102,
        counters: cpu(5),
    });
    let mut s = stop(100, vec![live(100, cpu(100), Open::Closed)]);
    s.lost = LostCounts {
        ringbuf_full: 2,
        threads_map_full: 1,
        ..LostCounts::default()
    };
    let p = r.finish(s, &mut FakeSym);
    assert_eq!(p.totals.lost_events, 3);
    assert_eq!(p.lost.ringbuf_full, 2);
    let t = p.threads.iter().find(|t| t.tid == 102).unwrap();
    assert!(!t.complete);
    assert_eq!(t.exited_ns, Some(30 * MS));
    assert!(p.threads[0].complete);
}

#[test]
fn thread_without_any_counters_is_incomplete() {
    let r = Recorder::new(
        target(),
        START,
        0,
        [initial(100, "app"), initial(103, "ghost")],
    );
    let p = r.finish_with(stop(100, vec![live(100, cpu(100), Open::Closed)]));
    let g = p.threads.iter().find(|t| t.tid == 103).unwrap();
    assert!(!g.complete);
    assert_eq!(g.on_cpu_ns, 0);
}

#[test]
fn dead_thread_left_in_the_map_is_not_extended_to_the_end() {
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app"), initial(104, "w")]);
    r.push(Event::Exit {
        ts: START + 40 * MS,
        tid: 104,
        comm: "w".into(),
    });
    let mut d = live(104, cpu(40), Open::Closed);
    d.dead = true;
    let p = r.finish_with(stop(100, vec![live(100, cpu(100), Open::Closed), d]));
    let t = p.threads.iter().find(|t| t.tid == 104).unwrap();
    assert_eq!(t.on_cpu_ns, 40 * MS);
    assert_eq!(t.exited_ns, Some(40 * MS));
    assert!(t.complete);
}

#[test]
fn exec_is_recorded_with_its_time() {
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    r.push(Event::Exec {
        ts: START + 5 * MS,
        tid: 100,
        old_tid: 100,
        filename: "/bin/true".into(),
    });
    r.push(Event::Rename {
        ts: START + 5 * MS,
        tid: 100,
        comm: "true".into(),
    });
    let p = r.finish_with(stop(10, vec![live(100, cpu(10), Open::Closed)]));
    assert_eq!(p.execs.len(), 1);
    assert_eq!(p.execs[0].at_ns, 5 * MS);
    assert_eq!(p.execs[0].filename, "/bin/true");
    assert_eq!(
        p.threads[0].names,
        vec!["app".to_string(), "true".to_string()]
    );
}

#[test]
fn profile_round_trips_through_json() {
    let r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    let p = r.finish_with(stop(10, vec![live(100, cpu(10), Open::Closed)]));
    let s = serde_json::to_string(&p).unwrap();
    let back: crate::profile::Profile = serde_json::from_str(&s).unwrap();
    assert_eq!(back, p);
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    for key in ["format", "target", "window", "totals", "threads"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in [
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
        assert!(
            v["threads"][0].get(key).is_some(),
            "missing threads[].{key}"
        );
    }
}

#[test]
fn stacks_are_symbolized_interned_and_merged() {
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    r.push(Event::New {
        ts: START + MS,
        tid: 101,
        tgid: 100,
        parent_tid: 100,
        parent_tgid: 100,
        comm: "app".into(),
        process: false,
        stack: Some(7),
        snapshot: None,
    });
    let mut s = stop(
        100,
        vec![
            live(100, cpu(100), Open::Closed),
            live(101, cpu(1), Open::Closed),
        ],
    );
    s.stacks.enabled = true;
    s.stacks.freq_hz = 99;
    // Leaf first: 0x3 called from 0x2 called from 0x1.
    s.stacks.stacks.insert(1, vec![0x3, 0x2, 0x1]);
    s.stacks.stacks.insert(2, vec![0x30, 0x20]);
    s.stacks.stacks.insert(7, vec![0x9, 0x8]);
    s.stacks.oncpu.push(RawOnCpu {
        tid: 100,
        ustack: Some(1),
        kstack: None,
        count: 5,
    });
    s.stacks.oncpu.push(RawOnCpu {
        tid: 100,
        ustack: Some(1),
        kstack: Some(2),
        count: 2,
    });
    s.stacks.offcpu.push(RawOffCpu {
        tid: 100,
        reason: OffReason::Sleeping,
        syscall: Some(0),
        ustack: Some(1),
        kstack: Some(2),
        total_ns: 40 * MS,
        count: 4,
        attach: false,
    });
    let p = r.finish(s, &mut FakeSym);
    assert_eq!(p.oncpu.len(), 2);
    assert_eq!(p.oncpu[0].count, 5);
    let names = |i: u32| {
        p.stack_frames(i)
            .iter()
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(p.oncpu[0].stack), vec!["f1", "f2", "f3"]);
    assert_eq!(
        names(p.oncpu[1].stack),
        vec!["f1", "f2", "f3", "k20", "k30"]
    );
    assert_eq!(
        p.offcpu[0].stack, p.oncpu[1].stack,
        "same stacks interned once"
    );
    assert_eq!(p.offcpu[0].reason, "sleeping");
    assert_eq!(
        p.offcpu[0].syscall.as_deref(),
        Some(crate::syscalls::name(0).as_str())
    );
    assert_eq!(p.frames.len(), 7, "5 sample frames + 2 creation frames");
    let t = p.threads.iter().find(|t| t.tid == 101).unwrap();
    assert_eq!(names(t.creation_stack.unwrap()), vec!["f8", "f9"]);
}

#[test]
fn timeline_segments_split_at_wakeups_and_close_at_the_end() {
    use crate::model::{RawSegment, TimelineInfo};
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    // On CPU 0-10 ms, asleep in read until 300 ms, runnable until 302 ms.
    r.push(Event::Segment(RawSegment {
        tid: 100,
        on_start: 0,
        off_start: START + 10 * MS,
        wake: Some(START + 300 * MS),
        end: START + 302 * MS,
        reason: Some(OffReason::Sleeping),
        syscall: Some(0),
        ustack: None,
    }));
    let mut l = live(
        100,
        cpu(20),
        Open::OnCpu {
            since_ns: START + 302 * MS,
        },
    );
    l.on_since = START + 302 * MS;
    let mut s = stop(400, vec![l]);
    s.timeline = Some(TimelineInfo::default());
    let p = r.finish(s, &mut FakeSym);
    let t = p.timeline.unwrap();
    let got: Vec<(u64, u64, &str)> = t
        .segments
        .iter()
        .map(|s| (s.start_ns / MS, s.end_ns / MS, &*s.state))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 10, "running"),
            (10, 300, "sleeping"),
            (300, 302, "runnable"),
            (302, 400, "running")
        ]
    );
    assert_eq!(
        t.segments[1].syscall.as_deref(),
        Some(crate::syscalls::name(0).as_str())
    );
}

#[test]
fn timeline_cap_counts_what_it_drops() {
    use crate::model::{RawSegment, TimelineInfo};
    let mut r = Recorder::new(target(), START, 0, [initial(100, "app")]);
    r.set_max_segments(1);
    for i in 0..3 {
        r.push(Event::Segment(RawSegment {
            tid: 100,
            on_start: START + i * MS,
            off_start: START + i * MS + 100,
            wake: None,
            end: START + (i + 1) * MS,
            reason: Some(OffReason::Runnable),
            syscall: None,
            ustack: None,
        }));
    }
    assert!(r.timeline_full());
    let mut s = stop(10, vec![]);
    s.timeline = Some(TimelineInfo { lost: 2, capped: 0 });
    let t = r.finish(s, &mut FakeSym).timeline.unwrap();
    assert_eq!((t.lost, t.capped), (2, 2));
}

//! The numbers `diff` compares, taken from one profile: totals, thread
//! counts, switches, time and episodes per blocking syscall, time per
//! thread role, and per-function on-CPU (self and total) and off-CPU time.

use std::collections::{BTreeMap, BTreeSet};

use crate::profile::Profile;

/// How a metric behaves between runs of the same program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Nanoseconds; noisy.
    Time,
    /// A count that varies with timing (switches, blocking episodes).
    Count,
    /// A count a program repeats exactly (threads created).
    Exact,
}

pub type Metrics = BTreeMap<String, (Kind, f64)>;

fn add(m: &mut Metrics, name: String, kind: Kind, v: f64) {
    m.entry(name).or_insert((kind, 0.0)).1 += v;
}

/// Every metric of `p`.
pub fn extract(p: &Profile) -> Metrics {
    let mut m = Metrics::new();
    let t = &p.totals;
    for (name, v) in [
        ("wall", p.window.duration_ns),
        ("on_cpu", t.on_cpu_ns),
        ("off_cpu", t.off_cpu_ns),
        ("runnable", t.runnable_ns),
        ("sleeping", t.sleeping_ns),
        ("blocked", t.blocked_ns),
    ] {
        add(&mut m, name.into(), Kind::Time, v as f64);
    }
    add(
        &mut m,
        "threads_seen".into(),
        Kind::Exact,
        t.threads_seen as f64,
    );
    add(
        &mut m,
        "threads_created".into(),
        Kind::Exact,
        t.threads_created as f64,
    );
    add(
        &mut m,
        "context_switches".into(),
        Kind::Count,
        t.context_switches as f64,
    );
    add(
        &mut m,
        "switches.voluntary".into(),
        Kind::Count,
        t.voluntary_switches as f64,
    );
    add(
        &mut m,
        "switches.involuntary".into(),
        Kind::Count,
        t.involuntary_switches as f64,
    );
    for th in &p.threads {
        for s in &th.syscalls {
            add(
                &mut m,
                format!("syscall.{}.time", s.name),
                Kind::Time,
                s.total_ns as f64,
            );
            add(
                &mut m,
                format!("syscall.{}.count", s.name),
                Kind::Count,
                s.count as f64,
            );
        }
        if let Some(r) = &th.role {
            for s in &r.shares {
                add(
                    &mut m,
                    format!("role.{}.time", s.role),
                    Kind::Time,
                    s.ns as f64,
                );
            }
        }
    }
    if p.sampling.freq_hz > 0 {
        let per_sample = 1e9 / p.sampling.freq_hz as f64;
        for s in &p.oncpu {
            let frames = p.stack_frames(s.stack);
            let v = s.count as f64 * per_sample;
            if let Some(leaf) = frames.last() {
                add(&mut m, format!("func.{}.self", leaf.name), Kind::Time, v);
            }
            let names: BTreeSet<&str> = frames.iter().map(|f| f.name.as_str()).collect();
            for n in names {
                add(&mut m, format!("func.{n}.total"), Kind::Time, v);
            }
        }
    }
    for s in &p.offcpu {
        let names: BTreeSet<&str> = p
            .stack_frames(s.stack)
            .iter()
            .filter(|f| !f.kernel)
            .map(|f| f.name.as_str())
            .collect();
        for n in names {
            add(
                &mut m,
                format!("offcpu.{n}.total"),
                Kind::Time,
                s.total_ns as f64,
            );
        }
    }
    m
}

//! The terminal report: a warning first when records were lost, one row per
//! thread, the blocking syscalls of the process, and a summary paragraph.
//! Colour only when asked for (the CLI asks when stdout is a terminal and
//! `NO_COLOR` is unset).

use std::{collections::BTreeMap, fmt::Write};

use super::Renderer;
use crate::{
    profile::{Profile, Thread},
    units::{ns, pct},
};

/// How to sort the thread table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// On-CPU time, largest first (default).
    #[default]
    Cpu,
    /// Off-CPU time, largest first.
    Off,
    /// Context switches, most first.
    Switches,
    /// Thread id.
    Tid,
}

/// Options of the text report.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// ANSI bold/colour. Default: off.
    pub color: bool,
    /// Thread table order. Default: on-CPU time.
    pub sort: SortBy,
    /// Show at most this many threads (0 = all). Default: all.
    pub max_threads: usize,
}

/// `report.txt` (never coloured).
pub struct Text(pub TextOptions);

impl Renderer for Text {
    fn file_name(&self) -> &'static str {
        "report.txt"
    }
    fn render(&self, profile: &Profile) -> anyhow::Result<Vec<u8>> {
        Ok(report(profile, &self.0).into_bytes())
    }
}

struct Style {
    on: bool,
}

impl Style {
    fn bold(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn warn(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[1;31m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn lifetime(t: &Thread) -> String {
    let at = |v: u64| format!("+{}", ns(v));
    let from = t.created_ns.map(at).unwrap_or_else(|| "before".into());
    let to = t.exited_ns.map(at).unwrap_or_else(|| "alive".into());
    if t.created_ns.is_none() && t.exited_ns.is_none() {
        "whole window".into()
    } else {
        format!("{from} → {to}")
    }
}

fn top_syscall(t: &Thread) -> String {
    match t.syscalls.first() {
        Some(s) => format!("{} {} ×{}", s.name, ns(s.total_ns), s.count),
        None => "-".into(),
    }
}

/// Renders the whole report.
pub fn report(p: &Profile, o: &TextOptions) -> String {
    let st = Style { on: o.color };
    let mut out = String::new();
    let w = &mut out;

    let exe = if p.target.exe.is_empty() {
        String::new()
    } else {
        format!(" {}", p.target.exe)
    };
    let _ = writeln!(
        w,
        "{} pid {} ({}){} — recorded {} (ended by {}), {} threads",
        st.bold("profiler:"),
        p.target.pid,
        p.target.comm,
        exe,
        ns(p.window.duration_ns),
        p.window.end_reason.replace('_', " "),
        p.totals.threads_seen
    );
    if p.totals.lost_events > 0 {
        let l = &p.lost;
        let causes: Vec<String> = [
            (l.ringbuf_full, "records dropped with the ring buffer full"),
            (l.threads_map_full, "threads not traced, thread map full"),
            (
                l.syscalls_map_full,
                "syscall statistics dropped, syscall map full",
            ),
            (
                l.stacks,
                "stack walks failed (missing from the flamegraphs)",
            ),
            (l.samples, "on-CPU samples dropped, sample map full"),
            (l.offcpu, "off-CPU periods not kept by stack, map full"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let partial = p.threads.iter().filter(|t| !t.complete).count();
        let threads = if partial > 0 {
            format!("numbers of {partial} thread(s) are partial")
        } else {
            "the numbers of the threads shown are complete".to_string()
        };
        let _ = writeln!(
            w,
            "\n{}",
            st.warn(&format!(
                "WARNING: {} kernel records were lost: {}; {threads}.",
                p.totals.lost_events,
                causes.join(", ")
            ))
        );
    }

    // Threads.
    let mut threads: Vec<&Thread> = p.threads.iter().collect();
    match o.sort {
        SortBy::Cpu => {
            threads.sort_by(|a, b| b.on_cpu_ns.cmp(&a.on_cpu_ns).then(a.tid.cmp(&b.tid)))
        }
        SortBy::Off => {
            threads.sort_by(|a, b| b.off_cpu_ns.cmp(&a.off_cpu_ns).then(a.tid.cmp(&b.tid)))
        }
        SortBy::Switches => threads.sort_by(|a, b| {
            (b.voluntary_switches + b.involuntary_switches)
                .cmp(&(a.voluntary_switches + a.involuntary_switches))
                .then(a.tid.cmp(&b.tid))
        }),
        SortBy::Tid => threads.sort_by_key(|t| (t.tid, t.created_ns)),
    }
    let shown = if o.max_threads == 0 {
        threads.len()
    } else {
        o.max_threads.min(threads.len())
    };
    let _ = writeln!(w, "\n{}", st.bold("THREADS"));
    let _ = writeln!(
        w,
        "  {:>7}  {:<16} {:<24} {:>9} {:>6} {:>9} {:>9} {:>9} {:>7} {:>7}  TOP BLOCKING SYSCALL",
        "TID",
        "NAME",
        "LIFETIME",
        "ON-CPU",
        "CPU%",
        "RUNNABLE",
        "SLEEPING",
        "BLOCKED",
        "VCSW",
        "ICSW",
    );
    for t in &threads[..shown] {
        let existed = t.existed_ns(&p.window);
        let mark = if t.complete { "" } else { "*" };
        let _ = writeln!(
            w,
            "  {:>7}  {:<16} {:<24} {:>9} {:>6} {:>9} {:>9} {:>9} {:>7} {:>7}  {}",
            format!("{}{mark}", t.tid),
            truncate(&t.name, 16),
            lifetime(t),
            ns(t.on_cpu_ns),
            pct(t.on_cpu_ns, existed),
            ns(t.runnable_ns),
            ns(t.sleeping_ns),
            ns(t.blocked_ns),
            t.voluntary_switches,
            t.involuntary_switches,
            top_syscall(t)
        );
    }
    if shown < threads.len() {
        let _ = writeln!(
            w,
            "  ... {} more threads (see profile.json)",
            threads.len() - shown
        );
    }
    let renamed: Vec<&&Thread> = threads.iter().filter(|t| t.names.len() > 1).collect();
    if !renamed.is_empty() {
        let _ = writeln!(w, "\n  Renamed threads:");
        for t in renamed {
            let _ = writeln!(w, "  {:>7}  {}", t.tid, t.names.join(" → "));
        }
    }
    if threads.iter().any(|t| !t.complete) {
        let _ = writeln!(
            w,
            "  * some records about this thread were lost: its numbers are partial"
        );
    }

    runtime_section(w, p, &threads[..shown], &st);
    details(w, p, &threads[..shown], &st);

    // Syscalls, process-wide.
    let mut by_sys: BTreeMap<&str, (u64, u64, u64, u64)> = BTreeMap::new();
    for t in &p.threads {
        for s in &t.syscalls {
            let e = by_sys.entry(s.name.as_str()).or_default();
            e.0 += 1;
            e.1 += s.count;
            e.2 += s.total_ns;
            e.3 = e.3.max(s.max_ns);
        }
    }
    let mut sys: Vec<_> = by_sys.into_iter().collect();
    sys.sort_by(|a, b| b.1.2.cmp(&a.1.2).then(a.0.cmp(b.0)));
    let _ = writeln!(
        w,
        "\n{}",
        st.bold("BLOCKING SYSCALLS (time off CPU inside each, all threads)")
    );
    if sys.is_empty() {
        let _ = writeln!(w, "  none");
    } else {
        let _ = writeln!(
            w,
            "  {:<20} {:>7} {:>8} {:>10} {:>10} {:>10}",
            "SYSCALL", "THREADS", "COUNT", "TOTAL", "AVG", "MAX"
        );
        for (name, (threads, count, total, max)) in sys.iter().take(15) {
            let _ = writeln!(
                w,
                "  {:<20} {:>7} {:>8} {:>10} {:>10} {:>10}",
                name,
                threads,
                count,
                ns(*total),
                ns(total / (*count).max(1)),
                ns(*max)
            );
        }
    }

    // Summary.
    let tt = &p.totals;
    let handled = if tt.kernel_events > 0 {
        format!(" (of {} kernel events handled)", tt.kernel_events)
    } else {
        String::new()
    };
    let lost = if tt.lost_events == 0 {
        format!("No kernel records were lost{handled}.")
    } else {
        st.warn(&format!(
            "{} kernel records were lost{handled}.",
            tt.lost_events
        ))
    };
    let _ = writeln!(w, "\n{}", st.bold("SUMMARY"));
    let _ = writeln!(
        w,
        "  {} threads seen over {}: {} created and {} exited during the recording. \
         On CPU {} in all; off CPU {} (runnable {}, sleeping {}, blocked {}{}). \
         {} context switches ({} voluntary, {} involuntary). {}",
        tt.threads_seen,
        ns(p.window.duration_ns),
        tt.threads_created,
        tt.threads_exited,
        ns(tt.on_cpu_ns),
        ns(tt.off_cpu_ns),
        ns(tt.runnable_ns),
        ns(tt.sleeping_ns),
        ns(tt.blocked_ns),
        if tt.stopped_ns > 0 {
            format!(", stopped {}", ns(tt.stopped_ns))
        } else {
            String::new()
        },
        tt.context_switches,
        tt.voluntary_switches,
        tt.involuntary_switches,
        lost
    );
    if !p.execs.is_empty() {
        for e in &p.execs {
            let _ = writeln!(
                w,
                "  pid {} exec'd {} at +{}",
                e.pid,
                e.filename,
                ns(e.at_ns)
            );
        }
    }
    if let Some(o) = &p.overhead {
        overhead_section(w, o, p.window.duration_ns, &st);
    }
    out
}

/// What the profiler's own kernel programs cost (`--measure-overhead`).
fn overhead_section(w: &mut String, o: &crate::profile::Overhead, window_ns: u64, st: &Style) {
    let _ = writeln!(
        w,
        "\n{}",
        st.bold("PROFILER OVERHEAD (kernel programs, BPF run-time statistics)")
    );
    let _ = writeln!(
        w,
        "  {:<20} {:>12} {:>10} {:>10}",
        "PROGRAM", "CALLS", "TOTAL", "PER CALL"
    );
    for p in &o.programs {
        let per = p.run_ns.checked_div(p.calls).map_or_else(|| "-".into(), ns);
        let _ = writeln!(
            w,
            "  {:<20} {:>12} {:>10} {:>10}",
            p.name,
            p.calls,
            ns(p.run_ns),
            per
        );
    }
    let total: u64 = o.programs.iter().map(|p| p.run_ns).sum();
    let machine = window_ns.saturating_mul(u64::from(o.cpus.max(1)));
    let _ = writeln!(
        w,
        "  In all {} of CPU time, {:.3}% of the machine's {} over the window ({} CPUs). \
         The programs run for every process's switches and wakeups; the statistics add \
         two clock reads to each call, which these times include.",
        ns(total),
        total as f64 * 100.0 / machine.max(1) as f64,
        ns(machine),
        o.cpus
    );
}

/// The Go X-ray (or roles from thread names): why these threads exist.
fn runtime_section(w: &mut String, p: &Profile, threads: &[&Thread], st: &Style) {
    let with_roles: Vec<&&Thread> = threads.iter().filter(|t| t.role.is_some()).collect();
    if p.runtime.is_none() && with_roles.is_empty() {
        return;
    }
    match &p.runtime {
        Some(rt) => {
            let _ = writeln!(w, "\n{}", st.bold("GO RUNTIME"));
            let _ = writeln!(w, "  {}", rt.explanation);
        }
        None => {
            let _ = writeln!(w, "\n{}", st.bold("THREAD ROLES (from thread names)"));
        }
    }
    for t in with_roles {
        let Some(r) = &t.role else { continue };
        let m0 = if r.main_thread && p.runtime.is_some() {
            " [M0]"
        } else {
            ""
        };
        let shares: Vec<String> = r
            .shares
            .iter()
            .take(3)
            .map(|s| {
                let ev = s
                    .evidence
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                format!("{} {}{ev}", pct((s.share * 1000.0) as u64, 1000), s.role)
            })
            .collect();
        let _ = writeln!(
            w,
            "  {:>7}  {:<34} {}",
            t.tid,
            format!("{}{m0}", r.dominant),
            shares.join(", ")
        );
    }
    if let Some(rt) = &p.runtime {
        for c in &rt.created {
            let _ = writeln!(w, "  {:>7}  created because {}", c.tid, c.cause);
        }
    }
}

/// `f1 ← f2 ← f3`: the innermost user frames of a stack (kernel frames
/// when it has no user frames), leaf first.
fn compact(p: &Profile, stack: u32, depth: usize) -> String {
    let frames = p.stack_frames(stack);
    let user: Vec<_> = frames.iter().filter(|f| !f.kernel).collect();
    let pick: Vec<_> = if user.is_empty() {
        frames.iter().collect()
    } else {
        user
    };
    let mut names: Vec<&str> = pick
        .iter()
        .rev()
        .take(depth)
        .map(|f| f.name.as_str())
        .collect();
    if pick.len() > depth {
        names.push("…");
    }
    if names.is_empty() {
        "[no stack]".into()
    } else {
        names.join(" ← ")
    }
}

/// Per thread: where its CPU time went, where it waited, who created it.
fn details(w: &mut String, p: &Profile, threads: &[&Thread], st: &Style) {
    if p.oncpu.is_empty()
        && p.offcpu.is_empty()
        && p.threads.iter().all(|t| t.creation_stack.is_none())
    {
        return;
    }
    let _ = writeln!(w, "\n{}", st.bold("WHERE THE TIME WENT (per thread)"));
    for t in threads.iter().take(24) {
        let on: Vec<_> = p.oncpu.iter().filter(|s| s.tid == t.tid).collect();
        let off: Vec<_> = p.offcpu.iter().filter(|s| s.tid == t.tid).collect();
        if on.is_empty() && off.is_empty() && t.creation_stack.is_none() {
            continue;
        }
        let _ = writeln!(w, "  {} {}", t.tid, t.name);
        if !on.is_empty() {
            let total: u64 = on.iter().map(|s| s.count).sum();
            let mut by_leaf: BTreeMap<&str, u64> = BTreeMap::new();
            for s in &on {
                let leaf = p
                    .stack_frames(s.stack)
                    .last()
                    .map(|f| f.name.as_str())
                    .unwrap_or("[no stack]");
                *by_leaf.entry(leaf).or_default() += s.count;
            }
            let mut v: Vec<_> = by_leaf.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = v
                .iter()
                .take(3)
                .map(|(f, n)| format!("{} {f}", pct(*n, total)))
                .collect();
            let _ = writeln!(w, "    on CPU   {total} samples: {}", top.join(", "));
        }
        let mut off = off;
        off.sort_by_key(|s| std::cmp::Reverse(s.total_ns));
        for (i, s) in off.iter().take(3).enumerate() {
            let label = if i == 0 { "off CPU " } else { "        " };
            let within = s
                .syscall
                .as_ref()
                .map(|c| format!(" in {c}"))
                .unwrap_or_default();
            let _ = writeln!(
                w,
                "    {label} {:>9} {}{within} ×{}: {}",
                ns(s.total_ns),
                s.reason,
                s.count,
                compact(p, s.stack, 4)
            );
        }
        if let Some(c) = t.creation_stack {
            let _ = writeln!(w, "    created by {}", compact(p, c, 5));
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::*;

    fn sample() -> Profile {
        let t = |tid, name: &str, on, created, exited| Thread {
            tid,
            pid: 10,
            name: name.into(),
            names: vec![name.into()],
            created_ns: created,
            exited_ns: exited,
            on_cpu_ns: on,
            complete: true,
            ..Thread::default()
        };
        let mut reader = t(12, "reader", 1_000_000, Some(5_000_000), None);
        reader.sleeping_ns = 300_000_000;
        reader.off_cpu_ns = 300_000_000;
        reader.syscalls.push(Syscall {
            name: "read".into(),
            nr: 0,
            count: 1,
            total_ns: 300_000_000,
            max_ns: 300_000_000,
        });
        Profile {
            format: FORMAT.into(),
            tool: Tool {
                name: "profiler".into(),
                version: "0".into(),
            },
            target: Target {
                pid: 10,
                comm: "app".into(),
                exe: "/bin/app".into(),
                cmdline: vec![],
                start_ticks: 0,
            },
            window: Window {
                start_ns: 0,
                end_ns: 1_000_000_000,
                duration_ns: 1_000_000_000,
                start_unix_ns: 0,
                end_reason: "duration".into(),
            },
            totals: Totals {
                threads_seen: 2,
                threads_created: 1,
                ..Totals::default()
            },
            lost: Lost::default(),
            threads: vec![t(10, "app", 900_000_000, None, None), reader],
            execs: vec![],
            command: None,
            runtime: None,
            sampling: Sampling::default(),
            frames: vec![],
            stacks: vec![],
            oncpu: vec![],
            offcpu: vec![],
            timeline: None,
            overhead: None,
        }
    }

    #[test]
    fn plain_report_has_rows_syscalls_and_summary_without_escapes() {
        let r = report(&sample(), &TextOptions::default());
        assert!(!r.contains('\x1b'));
        assert!(r.contains("pid 10 (app) /bin/app"));
        let app = r.lines().position(|l| l.contains(" app ")).unwrap();
        let reader = r.lines().position(|l| l.contains(" reader ")).unwrap();
        assert!(app < reader, "sorted by on-CPU time:\n{r}");
        assert!(r.contains("read 300.0ms ×1"), "{r}");
        assert!(r.contains("+5.0ms → alive"), "{r}");
        assert!(r.contains("No kernel records were lost."));
        assert!(!r.contains("WARNING"));
    }

    #[test]
    fn lost_records_are_flagged_first() {
        let mut p = sample();
        p.totals.lost_events = 3;
        p.lost.ringbuf_full = 3;
        p.threads[1].complete = false;
        let r = report(
            &p,
            &TextOptions {
                color: true,
                ..TextOptions::default()
            },
        );
        let first_lines: String = r.lines().take(3).collect();
        assert!(
            first_lines.contains("WARNING: 3 kernel records were lost"),
            "{r}"
        );
        assert!(
            first_lines.contains(
                "3 records dropped with the ring buffer full; numbers of 1 thread(s) are partial."
            ),
            "{r}"
        );
        assert!(r.contains("12*"));
        assert!(r.contains('\x1b'));
    }

    #[test]
    fn failed_stack_walks_are_named_and_leave_thread_numbers_complete() {
        let mut p = sample();
        p.totals.lost_events = 11;
        p.lost.stacks = 11;
        let r = report(&p, &TextOptions::default());
        assert!(
            r.contains(
                "WARNING: 11 kernel records were lost: 11 stack walks failed (missing from the \
                 flamegraphs); the numbers of the threads shown are complete."
            ),
            "{r}"
        );
        assert!(!r.contains("ring buffer full"), "{r}");
    }
}

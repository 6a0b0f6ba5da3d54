//! [`Recorder`]: accumulates kernel records during a recording and builds
//! the [`Profile`] at the end.
//!
//! Events are buffered and applied in timestamp order at [`Recorder::finish`]:
//! records from different CPUs reach the ring buffer in reservation order,
//! which may differ from the order their timestamps say. A tid may be reused
//! by a new thread after the old one died; each incarnation is its own
//! thread in the profile.

use std::collections::{BTreeMap, HashMap};

use super::{Counters, Event, InitialThread, OffReason, Open, StackTable, StopState};
use crate::{
    profile::{self, Exec, OffCpu, OnCpu, Profile, Rename, Syscall, Thread, Totals, Window},
    symbolize::Symbolize,
};

/// One thread incarnation being accumulated.
#[derive(Debug, Default)]
struct Acc {
    tid: u32,
    tgid: u32,
    names: Vec<String>,
    renames: Vec<(u64, String)>,
    parent_tid: Option<u32>,
    created_ts: Option<u64>,
    exited_ts: Option<u64>,
    counters: Counters,
    /// Final counters arrived (the thread's last switch-out).
    finished: bool,
    /// nr -> (count, total, max)
    syscalls: BTreeMap<u32, (u64, u64, u64)>,
    complete: bool,
    /// (process, raw user stack id) of the creating thread.
    creation_stack: Option<(u32, u32)>,
    /// (process, ip, sp, stack bytes) of the creating thread.
    creation_snapshot: Option<(u32, u64, u64, Vec<u8>)>,
    /// Stack read from /proc at attach.
    attach_stack: Option<crate::symbolize::attach::AttachStack>,
}

impl Acc {
    fn new(tid: u32, tgid: u32) -> Self {
        Acc {
            tid,
            tgid,
            complete: true,
            ..Acc::default()
        }
    }

    fn add_name(&mut self, name: &str) {
        if !name.is_empty() && self.names.last().map(String::as_str) != Some(name) {
            self.names.push(name.to_string());
        }
    }

    fn add_syscall(&mut self, nr: u32, count: u64, total: u64, max: u64) {
        let e = self.syscalls.entry(nr).or_default();
        e.0 += count;
        e.1 += total;
        e.2 = e.2.max(max);
    }
}

/// Target identity for the profile header.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub pid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub start_ticks: u64,
}

/// Accumulates a recording. See the module docs.
#[derive(Debug)]
pub struct Recorder {
    target: TargetInfo,
    start_ns: u64,
    start_unix_ns: u64,
    threads: Vec<Acc>,
    current: HashMap<u32, usize>,
    events: Vec<Event>,
    segments: Vec<super::RawSegment>,
    max_segments: usize,
    capped: u64,
}

impl Recorder {
    /// Starts a recording at `start_ns` (`CLOCK_MONOTONIC`) with the threads
    /// that existed then.
    pub fn new(
        target: TargetInfo,
        start_ns: u64,
        start_unix_ns: u64,
        initial: impl IntoIterator<Item = InitialThread>,
    ) -> Self {
        let mut r = Recorder {
            target,
            start_ns,
            start_unix_ns,
            threads: Vec::new(),
            current: HashMap::new(),
            events: Vec::new(),
            segments: Vec::new(),
            max_segments: usize::MAX,
            capped: 0,
        };
        for t in initial {
            r.add_initial(t);
        }
        r
    }

    /// Adds a thread that turned up after `new` (seeded late because it was
    /// created while recording started).
    pub fn add_initial(&mut self, t: InitialThread) {
        if !self.current.contains_key(&t.tid) {
            let i = self.spawn(t.tid, t.tgid);
            self.threads[i].add_name(&t.comm);
            self.threads[i].attach_stack = t.stack;
        }
    }

    /// Buffers a kernel record.
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Segment(s) if self.segments.len() < self.max_segments => self.segments.push(s),
            Event::Segment(_) => self.capped += 1,
            e => self.events.push(e),
        }
    }

    /// Keeps at most `n` timeline records; later ones are counted.
    pub fn set_max_segments(&mut self, n: usize) {
        self.max_segments = n;
    }

    /// Whether the timeline cap was reached.
    pub fn timeline_full(&self) -> bool {
        self.segments.len() >= self.max_segments
    }

    /// Number of records buffered so far.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Threads known so far (initial ones plus created ones buffered).
    pub fn threads_known(&self) -> usize {
        self.threads.len()
            + self
                .events
                .iter()
                .filter(|e| matches!(e, Event::New { .. }))
                .count()
    }

    fn spawn(&mut self, tid: u32, tgid: u32) -> usize {
        self.threads.push(Acc::new(tid, tgid));
        let i = self.threads.len() - 1;
        self.current.insert(tid, i);
        i
    }

    /// The current incarnation of `tid`, created (marked incomplete) when
    /// never seen: some record about it was lost.
    fn acc(&mut self, tid: u32, tgid: u32) -> usize {
        match self.current.get(&tid) {
            Some(&i) => i,
            None => {
                let i = self.spawn(tid, tgid);
                self.threads[i].complete = false;
                i
            }
        }
    }

    fn apply(&mut self, ev: Event, execs: &mut Vec<Exec>) {
        match ev {
            Event::New {
                ts,
                tid,
                tgid,
                parent_tid,
                parent_tgid,
                comm,
                process: _,
                stack,
                snapshot,
            } => {
                let i = match self.current.get(&tid) {
                    // Still alive: seeded at start while being created.
                    Some(&i)
                        if self.threads[i].exited_ts.is_none() && !self.threads[i].finished =>
                    {
                        i
                    }
                    _ => self.spawn(tid, tgid),
                };
                let a = &mut self.threads[i];
                a.tgid = tgid;
                a.created_ts = Some(ts);
                a.parent_tid = Some(parent_tid);
                a.creation_stack = stack.map(|id| (parent_tgid, id));
                a.creation_snapshot = snapshot.map(|(ip, sp, b)| (parent_tgid, ip, sp, b));
                if a.names.is_empty() {
                    a.add_name(&comm);
                }
            }
            Event::Exit { ts, tid, comm } => {
                let i = self.acc(tid, self.target.pid);
                let a = &mut self.threads[i];
                a.exited_ts.get_or_insert(ts);
                a.add_name(&comm);
            }
            Event::Rename { ts, tid, comm } => {
                let i = self.acc(tid, self.target.pid);
                let a = &mut self.threads[i];
                if a.names.last() != Some(&comm) {
                    a.renames.push((ts, comm.clone()));
                }
                a.add_name(&comm);
            }
            Event::Exec {
                ts,
                tid,
                old_tid: _,
                filename,
            } => execs.push(Exec {
                at_ns: ts.saturating_sub(self.start_ns),
                pid: tid,
                filename,
            }),
            Event::Segment(_) => {}
            Event::Final { ts, tid, counters } => {
                let i = self.acc(tid, self.target.pid);
                let a = &mut self.threads[i];
                a.counters = counters;
                a.finished = true;
                if a.exited_ts.is_none() {
                    // Its exit record was lost; the final switch-out is
                    // within microseconds of it.
                    a.exited_ts = Some(ts);
                    a.complete = false;
                }
            }
        }
    }

    /// Applies everything, closes the intervals still open at
    /// `stop.end_ns`, and builds the profile.
    pub fn finish(mut self, stop: StopState, sym: &mut dyn Symbolize) -> Profile {
        let end = stop.end_ns.max(self.start_ns);
        let mut events = std::mem::take(&mut self.events);
        // Stable: equal timestamps keep ring-buffer order.
        events.sort_by_key(Event::ts);
        let mut execs = Vec::new();
        for ev in events {
            self.apply(ev, &mut execs);
        }
        let mut have_counters: Vec<bool> = self.threads.iter().map(|a| a.finished).collect();
        let mut stop = stop;
        // Off-CPU periods still open at the end count under their stacks too.
        for live in &stop.live {
            if let (
                false,
                Open::OffCpu {
                    since_ns,
                    reason,
                    syscall,
                    ..
                },
            ) = (live.dead, live.open)
                && (live.ustack.is_some() || live.kstack.is_some() || live.seeded)
            {
                stop.stacks.offcpu.push(super::RawOffCpu {
                    tid: live.tid,
                    reason,
                    syscall,
                    ustack: live.ustack,
                    kstack: live.kstack,
                    total_ns: end.saturating_sub(since_ns),
                    count: 1,
                    attach: live.seeded,
                });
            }
        }

        for live in &stop.live {
            let i = self.acc(live.tid, live.tgid);
            if i >= have_counters.len() {
                have_counters.resize(i + 1, false);
            }
            have_counters[i] = true;
            let a = &mut self.threads[i];
            a.counters = live.counters;
            if live.dead {
                a.exited_ts.get_or_insert(end);
                continue;
            }
            close_open(a, live.open, end);
        }
        for s in &stop.syscalls {
            let i = self.acc(s.tid, self.target.pid);
            self.threads[i].add_syscall(s.nr, s.count, s.total_ns, s.max_ns);
        }
        let lost = profile::Lost {
            ringbuf_full: stop.lost.ringbuf_full,
            threads_map_full: stop.lost.threads_map_full,
            syscalls_map_full: stop.lost.syscalls_map_full,
            stacks: stop.lost.stacks,
            samples: stop.lost.samples,
            offcpu: stop.lost.offcpu,
        };
        for (i, a) in self.threads.iter_mut().enumerate() {
            if !have_counters.get(i).copied().unwrap_or(false) {
                a.complete = false;
            }
        }

        // Stacks: resolve every raw (process, user, kernel) stack once.
        let mut table = StackTable::default();
        let tgid_of: HashMap<u32, u32> = self.threads.iter().map(|a| (a.tid, a.tgid)).collect();
        let attach_of: HashMap<u32, usize> = self
            .threads
            .iter()
            .enumerate()
            .filter(|(_, a)| a.attach_stack.is_some() && a.created_ts.is_none())
            .map(|(i, a)| (a.tid, i))
            .collect();
        let raw = &stop.stacks.stacks;
        let mut oncpu: HashMap<(u32, u32), u64> = HashMap::new();
        for s in &stop.stacks.oncpu {
            let pid = tgid_of.get(&s.tid).copied().unwrap_or(self.target.pid);
            let st = table.resolve(sym, raw, pid, s.ustack, s.kstack);
            *oncpu.entry((s.tid, st)).or_default() += s.count;
        }
        // (tid, stack, reason, syscall) -> (total_ns, count)
        type OffKey = (u32, u32, OffReason, Option<u32>);
        let mut offcpu: HashMap<OffKey, (u64, u64)> = HashMap::new();
        for s in &stop.stacks.offcpu {
            let pid = tgid_of.get(&s.tid).copied().unwrap_or(self.target.pid);
            let st = if s.attach {
                let a = attach_of
                    .get(&s.tid)
                    .and_then(|&i| self.threads[i].attach_stack.as_ref());
                match a {
                    Some(a) => table.resolve_attach(sym, pid, a),
                    None => table.intern(Vec::new()),
                }
            } else {
                table.resolve(sym, raw, pid, s.ustack, s.kstack)
            };
            let e = offcpu.entry((s.tid, st, s.reason, s.syscall)).or_default();
            e.0 += s.total_ns;
            e.1 += s.count;
        }
        let creation: Vec<Option<u32>> = self
            .threads
            .iter()
            .map(|a| {
                let walked = a
                    .creation_stack
                    .map(|(pid, id)| table.resolve(sym, raw, pid, Some(id), None));
                // The stack copy unwinds past libc frames without frame
                // pointers: keep whichever names more frames.
                let scanned = a.creation_snapshot.as_ref().map(|(pid, ip, sp, bytes)| {
                    let ips = sym.unwind_snapshot(*pid, *ip, *sp, bytes);
                    table.resolve_ips(sym, *pid, &ips)
                });
                let named = |t: &StackTable, i: u32| {
                    t.stacks[i as usize]
                        .iter()
                        .filter(|&&f| !t.frames[f as usize].name.starts_with("[unknown]"))
                        .count()
                };
                match (walked, scanned) {
                    (Some(w), Some(s)) => Some(if named(&table, s) > named(&table, w) {
                        s
                    } else {
                        w
                    }),
                    (w, s) => w.or(s),
                }
            })
            .collect();
        let mut oncpu: Vec<OnCpu> = oncpu
            .into_iter()
            .map(|((tid, stack), count)| OnCpu { tid, stack, count })
            .collect();
        oncpu.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.tid.cmp(&b.tid))
                .then(a.stack.cmp(&b.stack))
        });
        let mut offcpu: Vec<OffCpu> = offcpu
            .into_iter()
            .map(|((tid, stack, reason, nr), (total_ns, count))| OffCpu {
                tid,
                stack,
                reason: reason.as_str().to_string(),
                syscall: nr.map(crate::syscalls::name),
                total_ns,
                count,
            })
            .collect();
        offcpu.sort_by(|a, b| {
            b.total_ns
                .cmp(&a.total_ns)
                .then(a.tid.cmp(&b.tid))
                .then(a.stack.cmp(&b.stack))
        });

        let timeline = stop.timeline.map(|info| {
            let mut b = TimelineBuilder {
                segs: Vec::new(),
                start: self.start_ns,
                end,
            };
            for s in &self.segments {
                let pid = tgid_of.get(&s.tid).copied().unwrap_or(self.target.pid);
                let st = s
                    .ustack
                    .map(|u| table.resolve(sym, raw, pid, Some(u), None));
                let on_start = if s.on_start == 0 {
                    self.start_ns
                } else {
                    s.on_start
                };
                b.push(s.tid, on_start, s.off_start, "running", None, None);
                if let Some(r) = s.reason {
                    b.off(s.tid, s.off_start, s.wake, s.end, r, s.syscall, st);
                }
            }
            // Periods still open at the end.
            for l in &stop.live {
                if l.dead {
                    continue;
                }
                let pid = tgid_of.get(&l.tid).copied().unwrap_or(self.target.pid);
                match l.open {
                    Open::OnCpu { since_ns } => b.push(l.tid, since_ns, end, "running", None, None),
                    Open::OffCpu {
                        since_ns,
                        reason,
                        woken_ns,
                        syscall,
                    } => {
                        if l.on_since != 0 {
                            b.push(l.tid, l.on_since, since_ns, "running", None, None);
                        }
                        let st = l
                            .ustack
                            .map(|u| table.resolve(sym, raw, pid, Some(u), None));
                        b.off(l.tid, since_ns, woken_ns, end, reason, syscall, st);
                    }
                    Open::Closed => {}
                }
            }
            b.segs.sort_by_key(|s| (s.tid, s.start_ns));
            profile::Timeline {
                segments: b.segs,
                lost: info.lost,
                capped: info.capped + self.capped,
            }
        });
        let window = Window {
            start_ns: self.start_ns,
            end_ns: end,
            duration_ns: end - self.start_ns,
            start_unix_ns: self.start_unix_ns,
            end_reason: stop.end_reason.clone(),
        };
        let start = self.start_ns;
        let rel = |t: u64| t.saturating_sub(start).min(window.duration_ns);
        let mut threads: Vec<Thread> = self
            .threads
            .into_iter()
            .zip(creation)
            .map(|(a, creation_stack)| {
                let c = a.counters;
                let mut syscalls: Vec<Syscall> = a
                    .syscalls
                    .iter()
                    .map(|(&nr, &(count, total_ns, max_ns))| Syscall {
                        name: crate::syscalls::name(nr),
                        nr,
                        count,
                        total_ns,
                        max_ns,
                    })
                    .collect();
                syscalls.sort_by(|x, y| y.total_ns.cmp(&x.total_ns).then(x.nr.cmp(&y.nr)));
                Thread {
                    tid: a.tid,
                    pid: a.tgid,
                    name: a.names.last().cloned().unwrap_or_default(),
                    names: a.names,
                    renames: a
                        .renames
                        .into_iter()
                        .map(|(t, name)| Rename {
                            at_ns: rel(t),
                            name,
                        })
                        .collect(),
                    parent_tid: a.parent_tid,
                    created_ns: a.created_ts.map(rel),
                    exited_ns: a.exited_ts.map(rel),
                    on_cpu_ns: c.on_cpu_ns,
                    runnable_ns: c.runnable_ns,
                    sleeping_ns: c.sleeping_ns,
                    blocked_ns: c.blocked_ns,
                    stopped_ns: c.stopped_ns,
                    off_cpu_ns: c.runnable_ns + c.sleeping_ns + c.blocked_ns + c.stopped_ns,
                    voluntary_switches: c.voluntary,
                    involuntary_switches: c.involuntary,
                    syscalls,
                    complete: a.complete,
                    creation_stack,
                    role: None,
                }
            })
            .collect();
        threads.sort_by_key(|t| (t.tid, t.created_ns));

        let mut totals = Totals {
            threads_seen: threads.len() as u64,
            lost_events: lost.total(),
            kernel_events: stop.kernel_events,
            ..Totals::default()
        };
        for t in &threads {
            totals.threads_created += u64::from(t.created_ns.is_some());
            totals.threads_exited += u64::from(t.exited_ns.is_some());
            totals.on_cpu_ns += t.on_cpu_ns;
            totals.off_cpu_ns += t.off_cpu_ns;
            totals.runnable_ns += t.runnable_ns;
            totals.sleeping_ns += t.sleeping_ns;
            totals.blocked_ns += t.blocked_ns;
            totals.stopped_ns += t.stopped_ns;
            totals.voluntary_switches += t.voluntary_switches;
            totals.involuntary_switches += t.involuntary_switches;
        }
        totals.context_switches = totals.voluntary_switches + totals.involuntary_switches;

        Profile {
            format: profile::FORMAT.to_string(),
            tool: profile::Tool {
                name: "profiler".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            target: profile::Target {
                pid: self.target.pid,
                comm: self.target.comm,
                exe: self.target.exe,
                cmdline: self.target.cmdline,
                start_ticks: self.target.start_ticks,
            },
            window,
            totals,
            lost,
            threads,
            execs,
            runtime: None,
            command: None,
            sampling: profile::Sampling {
                stacks: stop.stacks.enabled,
                freq_hz: stop.stacks.freq_hz,
                samples: stop.stacks.samples,
                stack_cache_hits: stop.stacks.cache_hits,
            },
            frames: table.frames,
            stacks: table.stacks,
            oncpu,
            offcpu,
            timeline,
            overhead: stop.overhead,
        }
    }
}

/// Turns kernel timeline records into clipped, window-relative segments.
struct TimelineBuilder {
    segs: Vec<profile::Segment>,
    start: u64,
    end: u64,
}

impl TimelineBuilder {
    fn push(
        &mut self,
        tid: u32,
        from: u64,
        to: u64,
        state: &'static str,
        sc: Option<u32>,
        stack: Option<u32>,
    ) {
        let (a, b) = (from.max(self.start), to.min(self.end));
        if b > a {
            self.segs.push(profile::Segment {
                tid,
                start_ns: a - self.start,
                end_ns: b - self.start,
                state: state.into(),
                syscall: sc.map(crate::syscalls::static_name),
                stack,
            });
        }
    }

    /// An off-CPU period: waiting for `reason` until the wakeup, then
    /// runnable until `to`.
    #[allow(clippy::too_many_arguments)]
    fn off(
        &mut self,
        tid: u32,
        since: u64,
        wake: Option<u64>,
        to: u64,
        reason: OffReason,
        sc: Option<u32>,
        stack: Option<u32>,
    ) {
        if reason == OffReason::Runnable {
            self.push(tid, since, to, "runnable", None, stack);
            return;
        }
        let wake = wake.filter(|&w| w >= since && w <= to).unwrap_or(to);
        self.push(tid, since, wake, reason.as_str(), sc, stack);
        self.push(tid, wake, to, "runnable", None, None);
    }
}

/// Adds the interval a live thread had open at `end` to its counters.
fn close_open(a: &mut Acc, open: Open, end: u64) {
    match open {
        Open::Closed => {}
        Open::OnCpu { since_ns } => a.counters.on_cpu_ns += end.saturating_sub(since_ns),
        Open::OffCpu {
            since_ns,
            reason,
            woken_ns,
            syscall,
        } => {
            let since = since_ns.min(end);
            let wake = woken_ns.filter(|&w| w >= since && w <= end).unwrap_or(end);
            let waiting = wake - since;
            let c = &mut a.counters;
            match reason {
                OffReason::Runnable => c.runnable_ns += end - since,
                OffReason::Sleeping => c.sleeping_ns += waiting,
                OffReason::Blocked => c.blocked_ns += waiting,
                OffReason::Stopped => c.stopped_ns += waiting,
            }
            if reason != OffReason::Runnable {
                c.runnable_ns += end - wake;
            }
            if let Some(nr) = syscall {
                let dt = end - since;
                a.add_syscall(nr, 1, dt, dt);
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! One recording: preflight, load, seed the threads that exist (attach) or
//! start the command traced from its first instruction (record), collect
//! records until the duration passes, a signal arrives or the target exits,
//! then read the kernel's state back, symbolize, and build the profile.

use std::{
    collections::HashSet,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use crate::{
    error::Error,
    golang::roles::GoFacts,
    kernel::{self, Kernel, decode},
    model::{Event, InitialThread, Recorder, StopState, TargetInfo},
    preflight,
    profile::{self, Profile},
    spawn::{Child, ExitInfo},
    symbolize::{Symbolizer, attach},
    target::{self, Process},
};

/// How to record.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: until a signal or the target's exit.
    pub duration: Option<Duration>,
    pub kernel: kernel::Options,
    /// Most timeline segments kept (`--timeline-max`).
    pub timeline_max: usize,
    /// `-v` count: 1 steps and timings, 2 details.
    pub verbose: u8,
}

/// Logs to stderr at verbosity `level` or more.
macro_rules! vlog {
    ($opts:expr, $level:expr, $($arg:tt)*) => {
        if $opts.verbose >= $level {
            eprintln!("profiler: [{:>8.3}s] {}", crate::kernel::monotonic_ns() as f64 / 1e9, format!($($arg)*));
        }
    };
}

/// Progress numbers for a status line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub elapsed: Duration,
    /// Lifecycle records received.
    pub records: u64,
    pub threads: u64,
    /// Kernel events handled so far (switches, wakeups, samples, records).
    pub events: u64,
    /// Records the kernel side could not deliver so far.
    pub lost: u64,
}

/// Hooks a caller can observe the recording through.
pub trait Observer {
    /// Programs are attached and the target traced: recording is live.
    fn started(&mut self, _pid: u32, _comm: &str, _threads: usize) {}
    /// Whether [`Observer::progress`] is wanted (computing it reads kernel
    /// counters, so it is skipped when nobody shows it).
    fn wants_progress(&self) -> bool {
        false
    }
    /// Called a few times a second when wanted.
    fn progress(&mut self, _p: Progress) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// Opens a pidfd for exit notification; `None` on kernels without it.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned on success.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Seeds every thread of `pid` not yet traced, until a pass finds none
/// (threads created meanwhile by threads not yet seeded are caught by the
/// next pass; those created by seeded threads are traced by the kernel).
fn seed_threads(
    k: &mut Kernel,
    sym: &Symbolizer,
    pid: u32,
    start_ns: u64,
    seen: &mut HashSet<u32>,
) -> Result<Vec<InitialThread>> {
    let mut initial = Vec::new();
    for _pass in 0..8 {
        let mut new = 0;
        for tid in target::tids(pid) {
            if !seen.insert(tid) {
                continue;
            }
            new += 1;
            let Some(snap) = target::snapshot(pid, tid) else {
                continue; // exited meanwhile
            };
            if matches!(snap.state, 'Z' | 'X') {
                continue; // a dead thread never runs again
            }
            // Read its stack first: once seeded, a thread waking would make
            // the stack read here belong to another period.
            let stack = match snap.state {
                'S' | 'D' | 'T' | 't' | 'I' => attach::read(pid, tid, sym.mappings(pid)),
                _ => None,
            };
            let rec = kernel::seed_record(pid, start_ns, snap.state, snap.syscall);
            if k.seed(tid, rec)? {
                initial.push(InitialThread {
                    tid,
                    tgid: pid,
                    comm: snap.comm,
                    stack,
                });
            }
        }
        if new == 0 {
            break;
        }
    }
    Ok(initial)
}

/// A live recording: kernel side, accumulated records, symbolization data.
struct Recording {
    k: Kernel,
    rec: Recorder,
    sym: Symbolizer,
    pids: HashSet<u32>,
    pid: u32,
    pidfd: Option<OwnedFd>,
    began: Instant,
    last_capture: Instant,
    /// Set when the target is a Go process.
    go: Option<GoFacts>,
    /// Timeline requested, and still streaming.
    timeline: bool,
    timeline_on: bool,
    records: u64,
    undecodable: u64,
}

impl Recording {
    fn new(
        k: Kernel,
        mut rec: Recorder,
        sym: Symbolizer,
        pid: u32,
        start_ns: u64,
        opts: &Options,
    ) -> Self {
        rec.set_max_segments(opts.timeline_max);
        // The window starts at `start_ns`: measure the duration from there.
        let since = Duration::from_nanos(kernel::monotonic_ns().saturating_sub(start_ns));
        Recording {
            k,
            rec,
            sym,
            pids: HashSet::from([pid]),
            pid,
            pidfd: pidfd(pid),
            began: Instant::now() - since,
            last_capture: Instant::now(),
            go: crate::golang::probe(pid),
            timeline: opts.kernel.timeline,
            timeline_on: opts.kernel.timeline,
            records: 0,
            undecodable: 0,
        }
    }

    /// Waits up to `wait` for records or the target's exit, then drains.
    fn poll(&mut self, wait: Duration) {
        let mut fds = vec![libc::pollfd {
            fd: self.k.ring_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(fd) = &self.pidfd {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: valid pollfd array; EINTR (a signal) just returns early.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        self.drain();
    }

    fn drain(&mut self) {
        if self.timeline_on && self.rec.timeline_full() {
            // Cap reached: stop the stream; what still arrives is counted.
            let _ = self.k.set_timeline(false);
            self.timeline_on = false;
        }
        let mut fresh: Vec<u32> = Vec::new();
        let (rec, records, undecodable) = (&mut self.rec, &mut self.records, &mut self.undecodable);
        self.k.drain(|b| match decode::decode(b) {
            Ok(ev) => {
                *records += 1;
                match &ev {
                    Event::Exec { tid, .. } => fresh.push(*tid),
                    Event::New {
                        tgid,
                        process: true,
                        ..
                    } => fresh.push(*tgid),
                    _ => {}
                }
                rec.push(ev);
            }
            Err(_) => *undecodable += 1,
        });
        for pid in fresh {
            self.sym.capture(pid);
            self.pids.insert(pid);
            if pid == self.pid {
                // The target exec'd: what it runs now decides.
                self.go = crate::golang::probe(pid);
            }
        }
        // Libraries mapped after exec (ld.so) or by dlopen: look again
        // often at first, then every 2 s (unchanged maps are skipped).
        let every = if self.began.elapsed() < Duration::from_secs(2) {
            Duration::from_millis(20)
        } else {
            Duration::from_secs(2)
        };
        if self.last_capture.elapsed() >= every {
            self.last_capture = Instant::now();
            for &pid in &self.pids {
                self.sym.capture(pid);
            }
        }
    }

    /// Whether the target process has exited.
    fn target_exited(&self) -> bool {
        match &self.pidfd {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, no wait.
                unsafe { libc::poll(&mut p, 1, 0) > 0 && p.revents & libc::POLLIN != 0 }
            }
            None => !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            elapsed: self.began.elapsed(),
            records: self.records,
            threads: self.rec.threads_known() as u64,
            events: self.k.events_handled(),
            lost: self
                .k
                .lost()
                .map(|l| {
                    l.ringbuf_full
                        + l.threads_map_full
                        + l.syscalls_map_full
                        + l.stacks
                        + l.samples
                        + l.offcpu
                })
                .unwrap_or(0),
        }
    }

    /// Ends the window, reads everything back and builds the profile.
    fn finish(mut self, end_reason: &str) -> Result<Profile> {
        let end_ns = self
            .k
            .stop_accounting()
            .context("stopping the kernel programs")?;
        // Late dlopen()s: capture again while the processes may still live.
        for &pid in &self.pids {
            self.sym.capture(pid);
        }
        self.k.detach().context("detaching the kernel programs")?;
        self.drain();
        let mut lost = self.k.lost()?;
        lost.ringbuf_full += self.undecodable;
        let stop_state = StopState {
            end_ns,
            end_reason: end_reason.to_string(),
            live: self.k.live_threads()?,
            syscalls: self.k.syscalls()?,
            lost,
            kernel_events: self.k.events_handled(),
            overhead: self.k.overhead(),
            stacks: self.k.stack_data()?,
            timeline: self.timeline.then(|| crate::model::TimelineInfo {
                lost: self
                    .k
                    .counter(profiler_common::counter::LOST_SEGMENTS)
                    .unwrap_or(0),
                capped: 0,
            }),
        };
        let mut profile = self.rec.finish(stop_state, &mut self.sym);
        match &self.go {
            Some(facts) => crate::golang::roles::annotate(&mut profile, facts),
            None => crate::roles::annotate_by_name(&mut profile),
        }
        Ok(profile)
    }
}

/// Checks the system, then loads and attaches the kernel programs.
fn load_kernel(opts: &Options) -> Result<Kernel> {
    preflight::check_all()?;
    vlog!(
        opts,
        1,
        "preflight ok (privileges, BTF, tracefs, tracepoint layouts)"
    );
    let t = std::time::Instant::now();
    let k = Kernel::load(&opts.kernel)?;
    vlog!(
        opts,
        1,
        "programs loaded and attached in {:?} ({:?})",
        t.elapsed(),
        opts.kernel
    );
    Ok(k)
}

fn wait_step(opts: &Options, elapsed: Duration) -> Duration {
    opts.duration
        .map(|d| d.saturating_sub(elapsed))
        .unwrap_or(Duration::MAX)
        .min(Duration::from_millis(200))
}

/// Records running process `pid` until the duration passes, `stop` is set,
/// or the target exits.
pub fn attach(
    pid: i64,
    opts: &Options,
    stop: &Arc<AtomicBool>,
    obs: &mut dyn Observer,
) -> Result<Profile> {
    let process: Process = target::inspect(pid)?;
    vlog!(
        opts,
        1,
        "target pid {} ({}) {} started at tick {}",
        process.pid,
        process.comm,
        process.exe,
        process.start_ticks
    );
    let mut k = load_kernel(opts)?;

    // What symbolization needs, captured while the target lives.
    let mut sym = Symbolizer::new();
    sym.capture(process.pid);
    let start_ns = kernel::monotonic_ns();
    let start_unix_ns = unix_now_ns();
    let mut seen = HashSet::new();
    vlog!(
        opts,
        1,
        "{} executable mappings captured",
        sym.mappings(process.pid).len()
    );
    if opts.verbose >= 2 {
        for m in sym.mappings(process.pid) {
            vlog!(
                opts,
                2,
                "  mapping {:x}-{:x} +{:x} {} (handle kept: {})",
                m.start,
                m.end,
                m.offset,
                m.path,
                m.file.is_some()
            );
        }
    }
    let initial = seed_threads(&mut k, &sym, process.pid, start_ns, &mut seen)?;
    vlog!(
        opts,
        1,
        "{} threads seeded ({} stacks read from /proc)",
        initial.len(),
        initial.iter().filter(|t| t.stack.is_some()).count()
    );
    if opts.verbose >= 2 {
        for t in &initial {
            vlog!(
                opts,
                2,
                "  thread {} ({}) stack frames at attach: {}",
                t.tid,
                t.comm,
                t.stack.as_ref().map(|s| s.user.len()).unwrap_or(0)
            );
        }
    }
    if initial.is_empty() && !target::alive(process.pid, process.start_ticks) {
        return Err(Error::NoSuchPid(pid).into());
    }
    let rec = Recorder::new(
        TargetInfo {
            pid: process.pid,
            comm: process.comm.clone(),
            exe: process.exe.clone(),
            cmdline: process.cmdline.clone(),
            start_ticks: process.start_ticks,
        },
        start_ns,
        start_unix_ns,
        initial,
    );
    let mut r = Recording::new(k, rec, sym, process.pid, start_ns, opts);
    obs.started(process.pid, &process.comm, seen.len());

    let end_reason = loop {
        let elapsed = r.began.elapsed();
        if stop.load(Ordering::Relaxed) {
            break "signal";
        }
        if opts.duration.is_some_and(|d| elapsed >= d) {
            break "duration";
        }
        if r.target_exited() {
            break "target_exited";
        }
        r.poll(wait_step(opts, elapsed));
        if obs.wants_progress() {
            obs.progress(r.progress());
        }
    };
    vlog!(
        opts,
        1,
        "stopping ({end_reason}) after {} lifecycle records",
        r.records
    );
    let t = std::time::Instant::now();
    let p = r.finish(end_reason);
    vlog!(
        opts,
        1,
        "kernel state read, symbolized and aggregated in {:?}",
        t.elapsed()
    );
    p
}

/// The result of `profiler record`.
#[derive(Debug)]
pub struct Recorded {
    pub profile: Profile,
    /// How the command ended (`None` if it was still running when the
    /// duration passed and had to be killed... or could not be reaped).
    pub exit: Option<ExitInfo>,
}

/// Runs `argv` traced from its first instruction until it exits (or the
/// duration passes: then it is stopped), following its threads and, with
/// `opts.kernel.follow_children`, its child processes.
pub fn record(
    argv: &[String],
    opts: &Options,
    stop: &Arc<AtomicBool>,
    obs: &mut dyn Observer,
) -> Result<Recorded> {
    let mut k = load_kernel(opts)?;
    let mut child = Child::fork_waiting(argv)?;
    vlog!(
        opts,
        1,
        "forked pid {} waiting to exec {:?}",
        child.pid,
        argv
    );
    let start_ns = kernel::monotonic_ns();
    let start_unix_ns = unix_now_ns();
    // The child is blocked reading the go pipe: sleeping, in read(2).
    k.seed(
        child.pid,
        kernel::seed_record(child.pid, start_ns, 'S', Some(0)),
    )?;
    let comm = std::path::Path::new(&argv[0])
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect::<String>())
        .unwrap_or_default();
    let rec = Recorder::new(
        TargetInfo {
            pid: child.pid,
            comm: comm.clone(),
            exe: String::new(),
            cmdline: argv.to_vec(),
            start_ticks: target::inspect(i64::from(child.pid))
                .map(|p| p.start_ticks)
                .unwrap_or(0),
        },
        start_ns,
        start_unix_ns,
        [InitialThread {
            tid: child.pid,
            tgid: child.pid,
            comm: "profiler".into(),
            stack: None,
        }],
    );
    // Release at once: the window is open, and the command should not wait
    // on our bookkeeping (its exec re-captures mappings and re-probes Go).
    obs.started(child.pid, &comm, 1);
    child.release()?;
    let mut r = Recording::new(k, rec, Symbolizer::new(), child.pid, start_ns, opts);
    let mut interrupted_at: Option<Instant> = None;
    let end_reason = loop {
        let elapsed = r.began.elapsed();
        if child.try_wait().is_some() {
            break "target_exited";
        }
        if stop.load(Ordering::Relaxed) {
            // Stop the command and keep recording until it is gone.
            match interrupted_at {
                None => {
                    child.signal(libc::SIGINT);
                    interrupted_at = Some(Instant::now());
                }
                Some(t) if t.elapsed() > Duration::from_secs(5) => {
                    child.signal(libc::SIGKILL);
                    child.wait();
                    break "signal";
                }
                Some(_) => {}
            }
        }
        if opts.duration.is_some_and(|d| elapsed >= d) {
            break "duration";
        }
        r.poll(wait_step(opts, elapsed).min(Duration::from_millis(50)));
        if obs.wants_progress() {
            obs.progress(r.progress());
        }
    };
    let end_reason = if interrupted_at.is_some() {
        "signal"
    } else {
        end_reason
    };
    let mut profile = r.finish(end_reason)?;
    if end_reason == "duration" {
        child.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().is_none() {
            child.signal(libc::SIGKILL);
        }
    }
    let exit = child.wait();
    if let Some(e) = profile.execs.iter().find(|e| e.pid == child.pid) {
        profile.target.exe = e.filename.clone();
    }
    if let Some(t) = profile.threads.iter().find(|t| t.tid == child.pid) {
        profile.target.comm = t.name.clone();
    }
    profile.command = Some(profile::Command {
        argv: argv.to_vec(),
        exit_code: match exit {
            Some(ExitInfo::Code(c)) => Some(c),
            _ => None,
        },
        signal: match exit {
            Some(ExitInfo::Signal(s)) => Some(s),
            _ => None,
        },
    });
    Ok(Recorded { profile, exit })
}

//! One recording of a live process: preflight, load, seed the threads that
//! exist, collect records until the duration passes, a signal arrives or
//! the target exits, then read the kernel's state back and build the
//! profile.

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
    kernel::{self, Kernel, decode},
    model::{InitialThread, Recorder, StopState, TargetInfo},
    preflight,
    profile::Profile,
    target::{self, Process},
};

/// What to record.
#[derive(Debug, Clone)]
pub struct Options {
    pub pid: i64,
    /// `None`: until a signal or the target's exit.
    pub duration: Option<Duration>,
    pub kernel: kernel::Options,
}

/// Progress numbers for a status line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub records: u64,
    pub threads: u64,
}

/// Hooks a caller can observe the recording through.
pub trait Observer {
    /// Programs are attached and the threads seeded: recording is live.
    fn started(&mut self, _target: &Process, _threads: usize) {}
    /// Called a few times a second.
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

/// Seeds every thread of `pid` not yet traced, until a pass finds none
/// (threads created meanwhile by threads not yet seeded are caught by the
/// next pass; those created by seeded threads are traced by the kernel).
fn seed_threads(
    k: &mut Kernel,
    proc: &Process,
    start_ns: u64,
    seen: &mut HashSet<u32>,
) -> Result<Vec<InitialThread>> {
    let mut initial = Vec::new();
    for _pass in 0..8 {
        let mut new = 0;
        for tid in target::tids(proc.pid) {
            if !seen.insert(tid) {
                continue;
            }
            new += 1;
            let Some(snap) = target::snapshot(proc.pid, tid) else {
                continue; // exited meanwhile
            };
            if matches!(snap.state, 'Z' | 'X') {
                continue; // a dead thread never runs again
            }
            let rec = kernel::seed_record(proc.pid, start_ns, snap.state, snap.syscall);
            if k.seed(tid, rec)? {
                initial.push(InitialThread {
                    tid,
                    tgid: proc.pid,
                    comm: snap.comm,
                });
            }
        }
        if new == 0 {
            break;
        }
    }
    Ok(initial)
}

/// Records `opts.pid` until the duration passes, `stop` is set, or the
/// target exits.
pub fn record(opts: &Options, stop: &Arc<AtomicBool>, obs: &mut dyn Observer) -> Result<Profile> {
    let process = target::inspect(opts.pid)?;
    preflight::check_all()?;
    let mut k = Kernel::load(&opts.kernel)?;

    let start_ns = kernel::monotonic_ns();
    let start_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut seen = HashSet::new();
    let initial = seed_threads(&mut k, &process, start_ns, &mut seen)?;
    if initial.is_empty() && !target::alive(process.pid, process.start_ticks) {
        return Err(crate::error::Error::NoSuchPid(opts.pid).into());
    }
    let mut rec = Recorder::new(
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
    obs.started(&process, seen.len());

    let pidfd = pidfd(process.pid);
    // The window starts at `start_ns`, before seeding: measure the
    // duration from there.
    let seeded_after = Duration::from_nanos(kernel::monotonic_ns().saturating_sub(start_ns));
    let began = Instant::now() - seeded_after;
    let mut undecodable = 0u64;
    let mut records = 0u64;
    let end_reason = loop {
        let elapsed = began.elapsed();
        if stop.load(Ordering::Relaxed) {
            break "signal";
        }
        if opts.duration.is_some_and(|d| elapsed >= d) {
            break "duration";
        }
        let exited = match &pidfd {
            Some(fd) => poll_readable(fd.as_raw_fd(), 0),
            None => !target::alive(process.pid, process.start_ticks),
        };
        if exited {
            break "target_exited";
        }
        let wait = opts
            .duration
            .map(|d| d.saturating_sub(elapsed))
            .unwrap_or(Duration::MAX)
            .min(Duration::from_millis(200));
        let mut fds = vec![k.ring_fd()];
        if let Some(fd) = &pidfd {
            fds.push(fd.as_raw_fd());
        }
        poll_any(&fds, wait);
        k.drain(|b| match decode::decode(b) {
            Ok(ev) => {
                records += 1;
                rec.push(ev);
            }
            Err(_) => undecodable += 1,
        });
        obs.progress(Progress {
            elapsed: began.elapsed(),
            records,
            threads: rec.threads_known() as u64,
        });
    };

    let end_ns = k
        .stop_accounting()
        .context("stopping the kernel programs")?;
    k.detach().context("detaching the kernel programs")?;
    k.drain(|b| match decode::decode(b) {
        Ok(ev) => rec.push(ev),
        Err(_) => undecodable += 1,
    });
    let mut lost = k.lost()?;
    lost.ringbuf_full += undecodable;
    let stop_state = StopState {
        end_ns,
        end_reason: end_reason.to_string(),
        live: k.live_threads()?,
        syscalls: k.syscalls()?,
        lost,
    };
    Ok(rec.finish(stop_state))
}

fn poll_any(fds: &[i32], timeout: Duration) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: valid array of pollfd; EINTR (a signal) just returns early.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
}

fn poll_readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & libc::POLLIN != 0
}

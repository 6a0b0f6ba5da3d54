//! The kernel side seen from userspace: loads the embedded eBPF object,
//! attaches its programs, seeds the threads of the target, drains the ring
//! buffer, and reads the maps back when recording stops. This is the only
//! module that uses aya; everything after it works on [`crate::model`]
//! types.

pub mod decode;

use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::{
        BtfTracePoint, PerfEvent, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
        tp_btf::BtfTracePointLinkId,
        trace_point::TracePointLinkId,
    },
    util::online_cpus,
};
use profiler_common::{
    Config, OffCpuKey, OffCpuVal, OnCpuKey, SyscallKey, SyscallStat, TGID_SLOTS, ThreadRec,
    counter, reason,
    thread_flags::{DEAD, OFF_CPU, ON_CPU, SEEDED},
};

use crate::model::{
    Counters, LiveThread, LostCounts, OffReason, Open, RawOffCpu, RawOnCpu, StackData,
    SyscallSample,
};

/// Classic tracepoints (program, category, name), in attach order: the
/// rare lifecycle events, whose record fields are handy.
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("task_newtask", "task", "task_newtask"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("task_rename", "task", "task_rename"),
    ("sched_process_exec", "sched", "sched_process_exec"),
];

/// BTF tracepoints (program = tracepoint name): the hot scheduler events,
/// which fire for every process on the machine. Like raw tracepoints they
/// build no record; their typed `task_struct` arguments let the programs
/// filter bystanders with plain loads (see `profiler-ebpf/src/sched.rs`).
const BTF_PROGRAMS: &[&str] = &["sched_wakeup", "sched_switch"];

/// How the kernel side is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Also trace processes forked by traced ones.
    pub follow_children: bool,
    /// Capacity of the thread map.
    pub max_threads: u32,
    /// Capture stacks (off-CPU, creation) and sample on-CPU stacks.
    pub stacks: bool,
    /// On-CPU sampling frequency in Hz (0: no on-CPU sampling).
    pub freq_hz: u64,
    /// Capacity of the stack map (distinct stacks).
    pub max_stacks: u32,
    /// Stream timeline records (one per switch cycle of a traced thread).
    pub timeline: bool,
    /// Turn on BPF run-time statistics for the recording.
    pub measure_overhead: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            follow_children: false,
            max_threads: 32768,
            stacks: true,
            freq_hz: 99,
            max_stacks: 16384,
            timeline: false,
            measure_overhead: false,
        }
    }
}

pub(crate) fn reason_of(r: u32) -> OffReason {
    match r {
        reason::SLEEPING => OffReason::Sleeping,
        reason::BLOCKED => OffReason::Blocked,
        reason::STOPPED => OffReason::Stopped,
        _ => OffReason::Runnable,
    }
}

/// Loaded and attached kernel programs with their maps.
pub struct Kernel {
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
    links: Vec<(&'static str, TracePointLinkId)>,
    btf_links: Vec<(&'static str, BtfTracePointLinkId)>,
    config: Config,
    freq_hz: u64,
    /// Threads that could not be seeded: thread map full.
    lost_seeds: u64,
    /// Holds BPF run-time statistics on (`--measure-overhead`).
    stats: Option<std::os::fd::OwnedFd>,
}

fn write_config(ebpf: &mut Ebpf, config: Config) -> Result<()> {
    let mut map: Array<_, Config> =
        Array::try_from(ebpf.map_mut("CONFIG").context("map CONFIG missing")?)?;
    map.set(0, config, 0).context("writing CONFIG")?;
    Ok(())
}

/// `CLOCK_MONOTONIC` now, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The counters part of a kernel record.
pub fn counters_of(r: &ThreadRec) -> Counters {
    Counters {
        on_cpu_ns: r.on_cpu_ns,
        runnable_ns: r.runnable_ns,
        sleeping_ns: r.sleeping_ns,
        blocked_ns: r.blocked_ns,
        stopped_ns: r.stopped_ns,
        voluntary: r.voluntary,
        involuntary: r.involuntary,
    }
}

/// A kernel record of a thread still traced at stop, as the model sees it.
pub fn live_of(tid: u32, r: &ThreadRec) -> LiveThread {
    let open = if r.flags & ON_CPU != 0 {
        Open::OnCpu {
            since_ns: r.last_ts,
        }
    } else if r.flags & OFF_CPU != 0 {
        Open::OffCpu {
            since_ns: r.last_ts,
            reason: reason_of(r.off_reason),
            woken_ns: (r.wake_ts != 0).then_some(r.wake_ts),
            syscall: u32::try_from(r.off_syscall).ok(),
        }
    } else {
        Open::Closed
    };
    LiveThread {
        tid,
        tgid: r.tgid,
        counters: counters_of(r),
        open,
        dead: r.flags & DEAD != 0,
        ustack: u32::try_from(r.off_ustack).ok(),
        kstack: u32::try_from(r.off_kstack).ok(),
        seeded: r.flags & SEEDED != 0 && r.flags & OFF_CPU != 0,
        on_since: r.on_since,
    }
}

/// The record a thread that existed at attach is seeded with: off CPU since
/// `start_ns` for the reason its `/proc` state gives. A thread that is in
/// fact running is first seen switching out, which counts it on CPU since
/// `start_ns` instead.
pub fn seed_record(tgid: u32, start_ns: u64, state: char, syscall: Option<u32>) -> ThreadRec {
    let off_reason = match state {
        'S' => reason::SLEEPING,
        'D' | 'I' => reason::BLOCKED,
        'T' | 't' => reason::STOPPED,
        _ => reason::RUNNABLE,
    };
    ThreadRec {
        tgid,
        flags: OFF_CPU | SEEDED,
        last_ts: start_ns,
        off_reason,
        off_syscall: match (off_reason, syscall) {
            (reason::SLEEPING | reason::BLOCKED, Some(nr)) => nr as i32,
            _ => -1,
        },
        off_ustack: -1,
        off_kstack: -1,
        ..ThreadRec::default()
    }
}

/// Entries of the `STACKS` map for at least `max_stacks` distinct stacks.
/// The kernel's stack map has `roundup_pow_of_two(max_entries)` buckets,
/// one stack each, and a stack whose bucket holds another fails with
/// `EEXIST` (counted as a lost stack walk). One entry past a power of two
/// doubles the buckets for the same memory, which halves those
/// collisions: 16385 entries give 32768 buckets.
pub fn stack_map_entries(max_stacks: u32) -> u32 {
    max_stacks
        .max(1)
        .checked_next_power_of_two()
        .map_or(max_stacks, |p| p.saturating_add(1))
}

impl Kernel {
    /// Loads and attaches every program. Nothing is traced until threads
    /// are seeded.
    pub fn load(opts: &Options) -> Result<Self> {
        let (pid_offset, tgid_offset) = crate::btf::task_id_offsets()?;
        let stats = if opts.measure_overhead {
            Some(
                aya::sys::enable_stats(aya::sys::Stats::RunTime)
                    .context("turning on BPF run-time statistics (--measure-overhead)")?,
            )
        } else {
            None
        };
        let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global("TASK_PID_OFFSET", &pid_offset, true)
            .override_global("TASK_TGID_OFFSET", &tgid_offset, true)
            .map_max_entries("THREADS", opts.max_threads)
            .map_max_entries("STACKS", stack_map_entries(opts.max_stacks))
            // A timeline streams a record per switch: a bigger buffer.
            .map_max_entries("EVENTS", if opts.timeline { 1 << 25 } else { 1 << 22 })
            .load(aya::include_bytes_aligned!(concat!(
                env!("OUT_DIR"),
                "/profiler"
            )))
            .context("loading the eBPF object")?;
        let config = Config {
            follow_children: u32::from(opts.follow_children),
            stopped: 0,
            stacks: u32::from(opts.stacks),
            timeline: u32::from(opts.timeline),
        };
        write_config(&mut ebpf, config)?;
        let mut links = Vec::new();
        for &(name, category, tp) in PROGRAMS {
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the eBPF object"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("loading program {name} (verifier)"))?;
            let id = prog
                .attach(category, tp)
                .with_context(|| format!("attaching {name} to {category}:{tp}"))?;
            links.push((name, id));
        }
        let mut btf_links = Vec::new();
        for &name in BTF_PROGRAMS {
            let prog: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the eBPF object"))?
                .try_into()?;
            prog.load(name, &btf)
                .with_context(|| format!("loading program {name} (verifier)"))?;
            let id = prog
                .attach()
                .with_context(|| format!("attaching {name} to BTF tracepoint {name}"))?;
            btf_links.push((name, id));
        }
        let sampling = opts.stacks && opts.freq_hz > 0;
        if sampling {
            let prog: &mut PerfEvent = ebpf
                .program_mut("on_cpu_sample")
                .context("program on_cpu_sample missing")?
                .try_into()?;
            prog.load()
                .context("loading program on_cpu_sample (verifier)")?;
            let cpus = online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
            for cpu in cpus {
                prog.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(opts.freq_hz),
                    false,
                )
                .with_context(|| format!("attaching the cpu-clock sampler on CPU {cpu}"))?;
            }
        }
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
        Ok(Kernel {
            ebpf,
            ring,
            links,
            btf_links,
            config,
            freq_hz: if sampling { opts.freq_hz } else { 0 },
            lost_seeds: 0,
            stats,
        })
    }

    /// Stops (or resumes) streaming timeline records.
    pub fn set_timeline(&mut self, on: bool) -> Result<()> {
        let config = Config {
            timeline: u32::from(on),
            ..self.config
        };
        write_config(&mut self.ebpf, config)?;
        self.config = config;
        Ok(())
    }

    /// Ends the window: the kernel stops accounting switches. Returns the
    /// window's end time.
    pub fn stop_accounting(&mut self) -> Result<u64> {
        let config = Config {
            stopped: 1,
            ..self.config
        };
        write_config(&mut self.ebpf, config)?;
        self.config = config;
        Ok(monotonic_ns())
    }

    /// Starts tracing `tid` with `rec`. Returns false when the thread is
    /// already traced (created by a traced thread meanwhile) or the thread
    /// map is full (then counted as lost, as the kernel side counts).
    pub fn seed(&mut self, tid: u32, rec: ThreadRec) -> Result<bool> {
        // The process passes the bystander filter before its thread is in
        // the map, so that no switch of it is missed.
        let mut tgids: Array<_, u8> =
            Array::try_from(self.ebpf.map_mut("TGIDS").context("map TGIDS missing")?)?;
        tgids
            .set(rec.tgid % TGID_SLOTS, 1, 0)
            .with_context(|| format!("letting process {} through the filter", rec.tgid))?;
        let mut threads: HashMap<_, u32, ThreadRec> = HashMap::try_from(
            self.ebpf
                .map_mut("THREADS")
                .context("map THREADS missing")?,
        )?;
        const BPF_NOEXIST: u64 = 1;
        match threads.insert(tid, rec, BPF_NOEXIST) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::SyscallError(e)) => match e.io_error.raw_os_error() {
                Some(libc::EEXIST) => Ok(false),
                Some(libc::E2BIG) => {
                    self.lost_seeds += 1;
                    Ok(false)
                }
                _ => Err(anyhow::Error::from(e)).with_context(|| format!("seeding thread {tid}")),
            },
            Err(e) => Err(e).with_context(|| format!("seeding thread {tid}")),
        }
    }

    /// File descriptor that polls readable when records are waiting.
    pub fn ring_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// Hands every waiting record to `f`.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) {
        while let Some(item) = self.ring.next() {
            f(&item);
        }
    }

    /// Detaches every program.
    pub fn detach(&mut self) -> Result<()> {
        while let Some((name, id)) = self.btf_links.pop() {
            let prog: &mut BtfTracePoint = self
                .ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing"))?
                .try_into()?;
            prog.detach(id)
                .with_context(|| format!("detaching {name}"))?;
        }
        while let Some((name, id)) = self.links.pop() {
            let prog: &mut TracePoint = self
                .ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing"))?
                .try_into()?;
            prog.detach(id)
                .with_context(|| format!("detaching {name}"))?;
        }
        Ok(())
    }

    /// Threads still in the map.
    pub fn live_threads(&self) -> Result<Vec<LiveThread>> {
        let threads: HashMap<_, u32, ThreadRec> =
            HashMap::try_from(self.ebpf.map("THREADS").context("map THREADS missing")?)?;
        let mut v = Vec::new();
        for item in threads.iter() {
            let (tid, rec) = item.context("reading the thread map")?;
            v.push(live_of(tid, &rec));
        }
        Ok(v)
    }

    /// Per-thread blocking-syscall statistics.
    pub fn syscalls(&self) -> Result<Vec<SyscallSample>> {
        let map: HashMap<_, SyscallKey, SyscallStat> =
            HashMap::try_from(self.ebpf.map("SYSCALLS").context("map SYSCALLS missing")?)?;
        let mut v = Vec::new();
        for item in map.iter() {
            let (k, s) = item.context("reading the syscall map")?;
            v.push(SyscallSample {
                tid: k.tid,
                nr: k.nr,
                count: s.count,
                total_ns: s.total_ns,
                max_ns: s.max_ns,
            });
        }
        Ok(v)
    }

    /// Sum over CPUs of counter `index`.
    pub fn counter(&self, index: u32) -> Result<u64> {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("COUNTERS").context("map COUNTERS missing")?)?;
        Ok(map.get(&index, 0)?.iter().sum())
    }

    pub fn lost(&self) -> Result<LostCounts> {
        Ok(LostCounts {
            ringbuf_full: self.counter(counter::LOST_RINGBUF)?,
            threads_map_full: self.counter(counter::LOST_THREADS_FULL)? + self.lost_seeds,
            syscalls_map_full: self.counter(counter::LOST_SYSCALLS_FULL)?,
            stacks: self.counter(counter::LOST_STACKS)?,
            samples: self.counter(counter::LOST_SAMPLES)?,
            offcpu: self.counter(counter::LOST_OFFCPU)?,
        })
    }

    /// On-CPU samples, off-CPU stacks, and every stack they refer to.
    /// What each program cost since attach, when run-time statistics are
    /// on (ours, or the `kernel.bpf_stats_enabled` sysctl); `None` when
    /// they are off, as the kernel then counts nothing.
    pub fn overhead(&self) -> Option<crate::profile::Overhead> {
        let sysctl_on = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .is_ok_and(|s| s.trim() == "1");
        if self.stats.is_none() && !sysctl_on {
            return None;
        }
        let mut programs: Vec<crate::profile::ProgramCost> = self
            .ebpf
            .programs()
            .filter_map(|(name, prog)| {
                let info = prog.info().ok()?;
                Some(crate::profile::ProgramCost {
                    name: name.to_string(),
                    calls: info.run_count(),
                    run_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                })
            })
            .collect();
        programs.sort_by(|a, b| b.run_ns.cmp(&a.run_ns).then(a.name.cmp(&b.name)));
        Some(crate::profile::Overhead {
            cpus: online_cpus().map(|c| c.len() as u32).unwrap_or(0),
            programs,
        })
    }

    /// Switches, wakeups, samples and streamed records handled so far.
    pub fn events_handled(&self) -> u64 {
        [
            counter::SWITCHES,
            counter::WAKEUPS,
            counter::SAMPLES,
            counter::RECORDS,
        ]
        .iter()
        .map(|&i| self.counter(i).unwrap_or(0))
        .sum()
    }

    pub fn stack_data(&self) -> Result<StackData> {
        let id = |v: i32| u32::try_from(v).ok();
        let mut d = StackData {
            enabled: self.config.stacks != 0,
            freq_hz: self.freq_hz,
            samples: self.counter(counter::SAMPLES)?,
            cache_hits: self.counter(counter::STACK_CACHE_HITS)?,
            ..StackData::default()
        };
        let on: HashMap<_, OnCpuKey, u64> =
            HashMap::try_from(self.ebpf.map("ONCPU").context("map ONCPU missing")?)?;
        for item in on.iter() {
            let (k, n) = item.context("reading the on-CPU samples")?;
            d.oncpu.push(RawOnCpu {
                tid: k.tid,
                ustack: id(k.ustack),
                kstack: id(k.kstack),
                count: n,
            });
        }
        let off: HashMap<_, OffCpuKey, OffCpuVal> =
            HashMap::try_from(self.ebpf.map("OFFCPU").context("map OFFCPU missing")?)?;
        for item in off.iter() {
            let (k, v) = item.context("reading the off-CPU stacks")?;
            d.offcpu.push(RawOffCpu {
                tid: k.tid,
                reason: reason_of(k.reason),
                syscall: u32::try_from(k.syscall).ok(),
                ustack: id(k.ustack),
                kstack: id(k.kstack),
                total_ns: v.total_ns,
                count: v.count,
                attach: k.ustack == profiler_common::ATTACH_STACK,
            });
        }
        let stacks: StackTraceMap<_> =
            StackTraceMap::try_from(self.ebpf.map("STACKS").context("map STACKS missing")?)?;
        for item in stacks.iter() {
            let (sid, trace) = item.context("reading the stack map")?;
            d.stacks
                .insert(sid, trace.frames().iter().map(|f| f.ip).collect());
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::stack_map_entries;

    #[test]
    fn stack_map_gets_twice_the_buckets_for_the_same_memory() {
        // Buckets = roundup_pow_of_two(entries), as the kernel sizes them.
        let buckets = |n: u32| n.next_power_of_two();
        assert_eq!(stack_map_entries(16384), 16385);
        assert_eq!(buckets(stack_map_entries(16384)), 32768);
        assert_eq!(stack_map_entries(1000), 1025);
        assert_eq!(buckets(stack_map_entries(1000)), 2048);
        assert_eq!(stack_map_entries(0), 2);
        assert_eq!(stack_map_entries(u32::MAX), u32::MAX);
    }
}

//! The aggregation model: turns what the kernel side reported (lifecycle
//! events in any order, per-thread counters, open intervals at stop, drop
//! counts) into a [`Profile`]. Pure Rust with no aya types, so it is unit
//! tested from recorded event sequences without root.

mod recorder;
mod stacks;

pub use recorder::{Recorder, TargetInfo};
pub use stacks::StackTable;

/// Per-thread time and switch counters, as the kernel aggregates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub on_cpu_ns: u64,
    pub runnable_ns: u64,
    pub sleeping_ns: u64,
    pub blocked_ns: u64,
    pub stopped_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

/// Why a thread is off CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffReason {
    Runnable,
    Sleeping,
    Blocked,
    Stopped,
}

impl OffReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OffReason::Runnable => "runnable",
            OffReason::Sleeping => "sleeping",
            OffReason::Blocked => "blocked",
            OffReason::Stopped => "stopped",
        }
    }
}

/// What a live thread was doing when recording stopped: the interval the
/// kernel had not closed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    OnCpu {
        since_ns: u64,
    },
    OffCpu {
        since_ns: u64,
        reason: OffReason,
        /// First wakeup after going off CPU.
        woken_ns: Option<u64>,
        syscall: Option<u32>,
    },
    /// Nothing open (the thread's final switch-out was seen).
    Closed,
}

/// A thread still in the kernel's map at stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveThread {
    pub tid: u32,
    pub tgid: u32,
    pub counters: Counters,
    pub open: Open,
    /// Died, but its final record could not be streamed.
    pub dead: bool,
    /// Stacks of the open off-CPU period (raw ids).
    pub ustack: Option<u32>,
    pub kstack: Option<u32>,
    /// Still in the off-CPU period that began before attach.
    pub seeded: bool,
    /// Start of its last on-CPU period (timeline), 0 if unknown.
    pub on_since: u64,
}

/// Off-CPU time of one thread inside one syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallSample {
    pub tid: u32,
    pub nr: u32,
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

/// A thread that existed when recording started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialThread {
    pub tid: u32,
    pub tgid: u32,
    pub comm: String,
    /// Its stack read from /proc when it was off CPU at attach.
    pub stack: Option<crate::symbolize::attach::AttachStack>,
}

/// A lifecycle record from the kernel. `ts` is `CLOCK_MONOTONIC` ns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A traced task created a thread (`process == false`) or, when
    /// following children, a process.
    New {
        ts: u64,
        tid: u32,
        tgid: u32,
        parent_tid: u32,
        parent_tgid: u32,
        comm: String,
        process: bool,
        /// User stack of the creating thread (id of a raw stack).
        stack: Option<u32>,
        /// The creating thread's user ip, sp and the stack bytes from sp.
        snapshot: Option<(u64, u64, Vec<u8>)>,
    },
    /// The thread entered exit.
    Exit {
        ts: u64,
        tid: u32,
        comm: String,
    },
    Rename {
        ts: u64,
        tid: u32,
        comm: String,
    },
    /// `tid` exec'd `filename` (`old_tid` called exec).
    Exec {
        ts: u64,
        tid: u32,
        old_tid: u32,
        filename: String,
    },
    /// The thread's last switch-out, with its final counters.
    Final {
        ts: u64,
        tid: u32,
        counters: Counters,
    },
    /// Timeline: an on-CPU period `[on_start, off_start)` then an off-CPU
    /// one `[off_start, end)` (`reason` None: the thread died at
    /// `off_start`).
    Segment(RawSegment),
}

/// A timeline record from the kernel (`CLOCK_MONOTONIC` ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSegment {
    pub tid: u32,
    /// 0 when the on-CPU period began before recording.
    pub on_start: u64,
    pub off_start: u64,
    pub wake: Option<u64>,
    pub end: u64,
    pub reason: Option<OffReason>,
    pub syscall: Option<u32>,
    pub ustack: Option<u32>,
}

impl Event {
    pub fn ts(&self) -> u64 {
        match self {
            Event::New { ts, .. }
            | Event::Exit { ts, .. }
            | Event::Rename { ts, .. }
            | Event::Exec { ts, .. }
            | Event::Final { ts, .. } => *ts,
            Event::Segment(s) => s.end,
        }
    }
}

/// Records the kernel side dropped, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostCounts {
    pub ringbuf_full: u64,
    pub threads_map_full: u64,
    pub syscalls_map_full: u64,
    /// Stacks that could not be stored.
    pub stacks: u64,
    /// On-CPU samples not counted (map full).
    pub samples: u64,
    /// Off-CPU periods not aggregated by stack (map full).
    pub offcpu: u64,
}

/// On-CPU samples of one thread with one pair of raw stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOnCpu {
    pub tid: u32,
    pub ustack: Option<u32>,
    pub kstack: Option<u32>,
    pub count: u64,
}

/// Off-CPU time of one thread, aggregated by reason, syscall and stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOffCpu {
    pub tid: u32,
    pub reason: OffReason,
    pub syscall: Option<u32>,
    pub ustack: Option<u32>,
    pub kstack: Option<u32>,
    pub total_ns: u64,
    pub count: u64,
    /// The period began before attach: its stack is the thread's
    /// [`InitialThread::stack`].
    pub attach: bool,
}

/// Stack sampling results read at stop.
#[derive(Debug, Clone, Default)]
pub struct StackData {
    /// Whether stacks were captured at all.
    pub enabled: bool,
    /// On-CPU sampling frequency (0 = off).
    pub freq_hz: u64,
    /// Samples of traced threads taken.
    pub samples: u64,
    /// Off-CPU stack captures saved by the per-thread cache.
    pub cache_hits: u64,
    pub oncpu: Vec<RawOnCpu>,
    pub offcpu: Vec<RawOffCpu>,
    /// Raw stacks by id: instruction pointers, leaf first.
    pub stacks: std::collections::HashMap<u32, Vec<u64>>,
}

/// Everything read from the kernel when recording stopped.
#[derive(Debug, Clone, Default)]
pub struct StopState {
    pub end_ns: u64,
    pub end_reason: String,
    pub live: Vec<LiveThread>,
    pub syscalls: Vec<SyscallSample>,
    pub lost: LostCounts,
    /// Events the kernel programs handled for traced threads: switches,
    /// wakeups, on-CPU samples and streamed records.
    pub kernel_events: u64,
    pub stacks: StackData,
    /// Timeline settings and losses (None: no timeline recorded).
    pub timeline: Option<TimelineInfo>,
    /// Cost of the kernel programs, when measured.
    pub overhead: Option<crate::profile::Overhead>,
}

/// What happened to the timeline stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineInfo {
    /// Records the kernel could not deliver (ring buffer full).
    pub lost: u64,
    /// Records dropped because the segment cap was reached.
    pub capped: u64,
}

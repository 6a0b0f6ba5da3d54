//! The saved profile (`profile.json`): what a recording found, versioned
//! and documented in `docs/profile-format.md`. Renderers, `report` and
//! `diff` read only this, so everything a report shows must be here.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Format tag of the files this version writes.
pub const FORMAT: &str = "profiler/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `"profiler/<major>"`.
    pub format: String,
    pub tool: Tool,
    pub target: Target,
    pub window: Window,
    pub totals: Totals,
    /// Records the kernel side could not deliver, by cause.
    pub lost: Lost,
    /// Every thread seen, sorted by tid.
    pub threads: Vec<Thread>,
    /// exec(2) calls of traced processes during the recording.
    #[serde(default)]
    pub execs: Vec<Exec>,
    /// The language runtime seen from outside (Go), when recognized.
    #[serde(default)]
    pub runtime: Option<Runtime>,
    /// `profiler record`: the command and how it ended.
    #[serde(default)]
    pub command: Option<Command>,
    /// Stack sampling settings and counts.
    #[serde(default)]
    pub sampling: Sampling,
    /// Every distinct frame; stacks refer to them by index.
    #[serde(default)]
    pub frames: Vec<Frame>,
    /// Every distinct stack: frame indices, root first (user frames, then
    /// kernel frames).
    #[serde(default)]
    pub stacks: Vec<Vec<u32>>,
    /// On-CPU samples per thread and stack.
    #[serde(default)]
    pub oncpu: Vec<OnCpu>,
    /// Off-CPU time per thread, stack, reason and syscall.
    #[serde(default)]
    pub offcpu: Vec<OffCpu>,
    /// Per-thread state over time (`--timeline`).
    #[serde(default)]
    pub timeline: Option<Timeline>,
    /// What the profiler's own kernel programs cost (`--measure-overhead`,
    /// or when `kernel.bpf_stats_enabled` was on).
    #[serde(default)]
    pub overhead: Option<Overhead>,
}

/// The profiler's kernel programs, measured by the kernel's BPF run-time
/// statistics from attach to stop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// CPUs online: the machine had `window × cpus` of CPU time.
    pub cpus: u32,
    /// Most expensive first.
    pub programs: Vec<ProgramCost>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramCost {
    /// The program, named after its hook (`sched_switch`...).
    pub name: String,
    /// Runs, for every process on the machine (the filter is inside).
    pub calls: u64,
    /// Time spent in it, ns. The statistics add two clock reads to each
    /// run, which this includes.
    pub run_ns: u64,
}

/// Every state period of every thread (`--timeline`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Sorted by thread, then start.
    pub segments: Vec<Segment>,
    /// Records the kernel could not deliver (ring buffer full).
    pub lost: u64,
    /// Records dropped after the `--timeline-max` cap was reached.
    pub capped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub tid: u32,
    /// ns after window start.
    pub start_ns: u64,
    pub end_ns: u64,
    /// `running`, `runnable`, `sleeping`, `blocked`, `stopped`. Borrowed
    /// from static names when recorded, so that a million segments do not
    /// hold two million small heap strings.
    pub state: Cow<'static, str>,
    pub syscall: Option<Cow<'static, str>>,
    /// User stack at the switch-out that began it (index into `stacks`).
    pub stack: Option<u32>,
}

pub use crate::symbolize::Frame;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub argv: Vec<String>,
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Signal that killed it, when one did.
    pub signal: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Stacks were captured (false with `--no-stacks`).
    pub stacks: bool,
    /// On-CPU sampling frequency in Hz (0 = no on-CPU sampling).
    pub freq_hz: u64,
    /// On-CPU samples of traced threads.
    pub samples: u64,
    /// Off-CPU stack walks saved by the per-thread stack cache.
    #[serde(default)]
    pub stack_cache_hits: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnCpu {
    pub tid: u32,
    /// Index into `stacks`.
    pub stack: u32,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffCpu {
    pub tid: u32,
    /// Index into `stacks`.
    pub stack: u32,
    /// `runnable`, `sleeping`, `blocked` or `stopped`.
    pub reason: String,
    /// The syscall it was in, if any.
    pub syscall: Option<String>,
    pub total_ns: u64,
    pub count: u64,
}

impl Profile {
    /// The frames of stack `i`, root first (empty if out of range).
    pub fn stack_frames(&self, i: u32) -> Vec<&Frame> {
        self.stacks
            .get(i as usize)
            .map(|s| {
                s.iter()
                    .filter_map(|&f| self.frames.get(f as usize))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Thread name by tid (the last incarnation's).
    pub fn thread_name(&self, tid: u32) -> &str {
        self.threads
            .iter()
            .rev()
            .find(|t| t.tid == tid)
            .map(|t| t.name.as_str())
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub pid: u32,
    pub comm: String,
    /// `/proc/<pid>/exe` at attach; empty when unreadable.
    pub exe: String,
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// Process start time in clock ticks since boot (`/proc/<pid>/stat`
    /// field 22): with the pid, identifies the process across pid reuse.
    #[serde(default)]
    pub start_ticks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// `CLOCK_MONOTONIC` ns when recording started / ended.
    pub start_ns: u64,
    pub end_ns: u64,
    pub duration_ns: u64,
    /// Wall-clock start, ns since the Unix epoch.
    #[serde(default)]
    pub start_unix_ns: u64,
    /// Why recording stopped: `duration`, `signal`, `target_exited`.
    #[serde(default)]
    pub end_reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub threads_seen: u64,
    pub threads_created: u64,
    pub threads_exited: u64,
    pub on_cpu_ns: u64,
    pub off_cpu_ns: u64,
    #[serde(default)]
    pub runnable_ns: u64,
    #[serde(default)]
    pub sleeping_ns: u64,
    #[serde(default)]
    pub blocked_ns: u64,
    #[serde(default)]
    pub stopped_ns: u64,
    pub context_switches: u64,
    #[serde(default)]
    pub voluntary_switches: u64,
    #[serde(default)]
    pub involuntary_switches: u64,
    pub lost_events: u64,
    /// Events the kernel programs handled for traced threads (switches,
    /// wakeups, on-CPU samples, streamed records): what `lost_events` is
    /// out of.
    #[serde(default)]
    pub kernel_events: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lost {
    /// Lifecycle records dropped because the ring buffer was full.
    pub ringbuf_full: u64,
    /// New threads not traced because the thread map was full.
    pub threads_map_full: u64,
    /// Blocking-syscall statistics dropped because their map was full.
    pub syscalls_map_full: u64,
    /// Stacks that could not be stored (stack map full or collision).
    #[serde(default)]
    pub stacks: u64,
    /// On-CPU samples dropped (sample map full).
    #[serde(default)]
    pub samples: u64,
    /// Off-CPU periods not aggregated by stack (map full).
    #[serde(default)]
    pub offcpu: u64,
}

impl Lost {
    pub fn total(&self) -> u64 {
        self.ringbuf_full
            + self.threads_map_full
            + self.syscalls_map_full
            + self.stacks
            + self.samples
            + self.offcpu
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub tid: u32,
    /// Process (thread group) the thread belongs to.
    pub pid: u32,
    /// Last name (comm).
    pub name: String,
    /// Every name it had, in order.
    pub names: Vec<String>,
    /// Name changes seen during the recording.
    #[serde(default)]
    pub renames: Vec<Rename>,
    /// Thread that created it; null when created before attach.
    pub parent_tid: Option<u32>,
    /// ns after window start; null when created before attach.
    pub created_ns: Option<u64>,
    /// ns after window start; null when still alive at the end.
    pub exited_ns: Option<u64>,
    pub on_cpu_ns: u64,
    /// Off CPU but runnable: preempted, or woken and waiting for a CPU.
    pub runnable_ns: u64,
    /// Interruptible sleep (`S`) until woken.
    pub sleeping_ns: u64,
    /// Uninterruptible sleep (`D`) until woken.
    pub blocked_ns: u64,
    /// Stopped or traced (`T`/`t`) until continued.
    #[serde(default)]
    pub stopped_ns: u64,
    pub off_cpu_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// Syscalls the thread went off CPU in, by total time, longest first.
    pub syscalls: Vec<Syscall>,
    /// False when some of its records were lost: its numbers are partial.
    #[serde(default = "yes")]
    pub complete: bool,
    /// User stack of the thread that created it (index into `stacks`).
    #[serde(default)]
    pub creation_stack: Option<u32>,
    /// What the thread is, for a recognized runtime (Go) or from its name.
    #[serde(default)]
    pub role: Option<ThreadRole>,
}

/// A thread's role: its time split by role, with evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadRole {
    /// The role with the most time.
    pub dominant: String,
    /// The process's main thread (M0 for Go).
    pub main_thread: bool,
    /// Time per role, most first.
    pub shares: Vec<RoleShare>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleShare {
    pub role: String,
    /// Time (on-CPU samples converted at the sampling frequency, plus
    /// off-CPU time) under stacks showing this role.
    pub ns: u64,
    /// Fraction of the thread's classified time.
    pub share: f64,
    /// The frames (or facts) that decided it.
    pub evidence: Vec<String>,
}

/// A language runtime recognized in the target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// `go`.
    pub kind: String,
    pub go_version: String,
    pub module: String,
    pub gomaxprocs: u32,
    pub gomaxprocs_source: String,
    /// Links C code (cgo).
    pub cgo: bool,
    /// runtime.handoffp (or entersyscallblock) was seen in a stack.
    pub handoff_seen: bool,
    /// Threads created during the recording and why.
    pub created: Vec<CreatedThread>,
    /// Why the process has the threads it has, in plain words.
    pub explanation: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatedThread {
    pub tid: u32,
    pub cause: String,
}

fn yes() -> bool {
    true
}

impl Thread {
    /// Time the thread existed within the window.
    pub fn existed_ns(&self, window: &Window) -> u64 {
        let from = self.created_ns.unwrap_or(0);
        let to = self.exited_ns.unwrap_or(window.duration_ns);
        to.saturating_sub(from)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rename {
    /// ns after window start.
    pub at_ns: u64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Syscall {
    pub name: String,
    pub nr: u32,
    /// Times the thread went off CPU inside it.
    pub count: u64,
    /// Off-CPU time inside it, switch-out to switch-in.
    pub total_ns: u64,
    pub max_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    /// ns after window start.
    pub at_ns: u64,
    pub pid: u32,
    pub filename: String,
}

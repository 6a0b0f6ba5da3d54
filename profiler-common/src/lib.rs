//! Types shared by the kernel programs (`profiler-ebpf`) and userspace
//! (`profiler`): map keys and values, ring-buffer records, and the tracepoint
//! field offsets the kernel side reads.
//!
//! Layout rules (as in aya's own integration tests): every type is
//! `#[repr(C)]`, `Copy`, sized to a multiple of 8 with explicit padding
//! fields, and uses no `bool`/`Option`/enums, so that both sides agree on
//! every byte and userspace can decode ring-buffer records with
//! `read_unaligned` after checking their length.
#![no_std]

/// Length of a task's `comm` in the kernel (including the NUL).
pub const TASK_COMM_LEN: usize = 16;

/// Bytes of an exec'd file name kept in an [`ExecEvent`].
pub const EXEC_FILENAME_LEN: usize = 256;

/// Largest syscall number we trust as one (x86_64 has ~460 today).
pub const MAX_SYSCALL_NR: u64 = 1024;

/// Offsets of fields of the classic tracepoints (the lifecycle ones; the
/// scheduler hot path uses raw tracepoints), as
/// `/sys/kernel/tracing/events/*/*/format` gives them on the 6.x kernels we
/// target. Userspace checks each one
/// against the running kernel's format files before loading the programs
/// and refuses to run with a clear message when one differs, so a changed
/// layout can never be read silently wrong.
pub mod tp {
    pub const SCHED_PROCESS_EXIT_PID: usize = 24;
    pub const SCHED_PROCESS_EXEC_FILENAME: usize = 8;
    pub const SCHED_PROCESS_EXEC_PID: usize = 12;
    pub const SCHED_PROCESS_EXEC_OLD_PID: usize = 16;
    pub const TASK_NEWTASK_PID: usize = 8;
    pub const TASK_NEWTASK_COMM: usize = 12;
    pub const TASK_NEWTASK_CLONE_FLAGS: usize = 32;
    pub const TASK_RENAME_PID: usize = 8;
    pub const TASK_RENAME_NEWCOMM: usize = 28;

    /// (event, field, offset, size) for the userspace check.
    pub const CHECKED_FIELDS: &[(&str, &str, usize, usize)] = &[
        ("sched/sched_process_exit", "pid", SCHED_PROCESS_EXIT_PID, 4),
        (
            "sched/sched_process_exec",
            "filename",
            SCHED_PROCESS_EXEC_FILENAME,
            4,
        ),
        ("sched/sched_process_exec", "pid", SCHED_PROCESS_EXEC_PID, 4),
        (
            "sched/sched_process_exec",
            "old_pid",
            SCHED_PROCESS_EXEC_OLD_PID,
            4,
        ),
        ("task/task_newtask", "pid", TASK_NEWTASK_PID, 4),
        ("task/task_newtask", "comm", TASK_NEWTASK_COMM, 16),
        (
            "task/task_newtask",
            "clone_flags",
            TASK_NEWTASK_CLONE_FLAGS,
            8,
        ),
        ("task/task_rename", "pid", TASK_RENAME_PID, 4),
        ("task/task_rename", "newcomm", TASK_RENAME_NEWCOMM, 16),
    ];
}

/// `prev_state` values as the `sched_switch` tracepoint reports them
/// (`__trace_sched_switch_state`: one bit per state, `TASK_REPORT_MAX` when
/// the task was preempted).
pub mod state {
    pub const RUNNING: u64 = 0;
    pub const INTERRUPTIBLE: u64 = 0x1;
    pub const UNINTERRUPTIBLE: u64 = 0x2;
    pub const STOPPED: u64 = 0x4;
    pub const TRACED: u64 = 0x8;
    pub const EXIT_DEAD: u64 = 0x10;
    pub const EXIT_ZOMBIE: u64 = 0x20;
    pub const PARKED: u64 = 0x40;
    pub const IDLE: u64 = 0x80;
    /// Reported for a preempted task (`TASK_REPORT_MAX`).
    pub const PREEMPTED: u64 = 0x100;
}

/// Why a thread is off CPU, as stored in [`ThreadRec::off_reason`].
pub mod reason {
    /// Preempted or yielded: runnable, waiting for a CPU.
    pub const RUNNABLE: u32 = 0;
    /// Interruptible sleep (`S`).
    pub const SLEEPING: u32 = 1;
    /// Uninterruptible sleep (`D`, also `I`).
    pub const BLOCKED: u32 = 2;
    /// Stopped or traced (`T`, `t`).
    pub const STOPPED: u32 = 3;
}

/// [`ThreadRec::flags`] bits.
pub mod thread_flags {
    /// The thread is on a CPU since `last_ts`.
    pub const ON_CPU: u32 = 1 << 0;
    /// The thread is off CPU since `last_ts` (for `off_reason`).
    pub const OFF_CPU: u32 = 1 << 1;
    /// The thread died; its final record could not be streamed, so it stays
    /// in the map for userspace to collect.
    pub const DEAD: u32 = 1 << 2;
    /// The thread was seeded by userspace at attach (existed before).
    pub const SEEDED: u32 = 1 << 3;
}

/// Per-thread accounting state and counters, the value of the `THREADS` map
/// (key: tid). The map doubles as the in-kernel filter: a thread is traced
/// iff it has an entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadRec {
    /// Thread-group id (process id) of the thread.
    pub tgid: u32,
    /// [`thread_flags`] bits.
    pub flags: u32,
    /// Switch-in time when on CPU; switch-out time when off CPU (ns,
    /// `CLOCK_MONOTONIC`).
    pub last_ts: u64,
    /// First wakeup after the last switch-out, 0 if none yet.
    pub wake_ts: u64,
    /// [`reason`] of the current off-CPU period.
    pub off_reason: u32,
    /// Syscall the thread went off CPU in, -1 if not in one.
    pub off_syscall: i32,
    pub on_cpu_ns: u64,
    pub runnable_ns: u64,
    pub sleeping_ns: u64,
    pub blocked_ns: u64,
    pub stopped_ns: u64,
    /// Context switches counted as `/proc/<pid>/status` counts them.
    pub voluntary: u64,
    pub involuntary: u64,
    /// Stacks of the current off-CPU period (ids in `STACKS`, -1 = none).
    pub off_ustack: i32,
    pub off_kstack: i32,
    /// The last two off-CPU stack captures, by the place the thread left
    /// the CPU from: a thread that goes off CPU again at the same place
    /// has the same stacks, so they are reused instead of walked again.
    /// Two slots, because threads commonly alternate between two places
    /// (blocked in `read`, preempted in `write`).
    pub cache: [StackCacheSlot; STACK_CACHE_SLOTS],
    /// The slot used last; a miss replaces the other one.
    pub cache_last: u32,
    pub _pad: u32,
    /// The last creation stack this thread captured (`task_newtask`) and
    /// where: a thread that creates threads again and again from the same
    /// place reuses it instead of walking its stack each time.
    pub create_cache: StackCacheSlot,
    /// Start of the current or last on-CPU period (timeline), 0 if unknown.
    pub on_since: u64,
}

/// One remembered off-CPU stack capture (see [`ThreadRec::cache`]). Empty
/// while `ip` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackCacheSlot {
    /// Saved user registers and syscall the stacks were captured at
    /// (`nr` is `i32::MIN` for a capture without the kernel stack).
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    pub nr: i32,
    /// Reuses since the capture; a capture is forced every
    /// [`STACK_CACHE_MAX_AGE`] reuses.
    pub age: u32,
    pub ustack: i32,
    pub kstack: i32,
}

/// Slots of [`ThreadRec::cache`].
pub const STACK_CACHE_SLOTS: usize = 2;

/// Stack id meaning "the stack userspace read from /proc at attach" (the
/// off-CPU period that began before recording did).
pub const ATTACH_STACK: i32 = -2;

/// Slots of the bystander filter (`TGIDS`): a process's slot is
/// `tgid % TGID_SLOTS`. A power of two, so the modulo is a mask.
pub const TGID_SLOTS: u32 = 4096;

/// Reuses of cached off-CPU stacks before they are walked again.
pub const STACK_CACHE_MAX_AGE: u32 = 64;

/// Key of the on-CPU sample counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OnCpuKey {
    pub tid: u32,
    pub ustack: i32,
    pub kstack: i32,
    pub _pad: u32,
}

/// Key of the off-CPU time aggregation: where and why a thread waited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OffCpuKey {
    pub tid: u32,
    /// [`reason`].
    pub reason: u32,
    /// Syscall number, -1 when not in one.
    pub syscall: i32,
    pub ustack: i32,
    pub kstack: i32,
    pub _pad: u32,
}

/// Off-CPU time for one [`OffCpuKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffCpuVal {
    pub total_ns: u64,
    pub count: u64,
}

/// Key of the per-thread blocking-syscall map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    pub tid: u32,
    pub nr: u32,
}

/// Time a thread spent off CPU inside one syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallStat {
    /// Off-CPU episodes inside the syscall.
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

/// Settings userspace writes before enabling the programs (index 0 of the
/// `CONFIG` array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// Follow child processes (fork without `CLONE_THREAD`) of traced ones.
    pub follow_children: u32,
    /// Set by userspace to end the window: switches are no longer
    /// accounted from then on (detaching takes tens of ms).
    pub stopped: u32,
    /// Capture stacks (off-CPU at switch-out, creation stacks); on-CPU
    /// sampling is attached only when enabled.
    pub stacks: u32,
    /// Stream one timeline record per switch cycle (`--timeline`).
    pub timeline: u32,
}

/// Indices of the per-CPU `COUNTERS` array.
pub mod counter {
    /// Ring-buffer records that could not be reserved (buffer full).
    pub const LOST_RINGBUF: u32 = 0;
    /// New threads that could not be tracked (`THREADS` map full).
    pub const LOST_THREADS_FULL: u32 = 1;
    /// Syscall statistics that could not be stored (map full).
    pub const LOST_SYSCALLS_FULL: u32 = 2;
    /// Context switches of traced threads processed.
    pub const SWITCHES: u32 = 3;
    /// Wakeups of traced threads processed.
    pub const WAKEUPS: u32 = 4;
    /// Ring-buffer records written.
    pub const RECORDS: u32 = 5;
    /// Stacks that could not be stored (stack map full or hash collision).
    pub const LOST_STACKS: u32 = 6;
    /// On-CPU samples of traced threads taken.
    pub const SAMPLES: u32 = 7;
    /// On-CPU samples dropped (sample map full).
    pub const LOST_SAMPLES: u32 = 8;
    /// Off-CPU periods not aggregated by stack (off-CPU map full).
    pub const LOST_OFFCPU: u32 = 9;
    /// Off-CPU stack captures saved by the per-thread cache.
    pub const STACK_CACHE_HITS: u32 = 10;
    /// Timeline records that could not be reserved (ring buffer full).
    pub const LOST_SEGMENTS: u32 = 11;
    pub const COUNT: u32 = 12;
}

/// Kind of a ring-buffer record ([`EventHeader::kind`]).
pub mod event_kind {
    pub const TASK_NEW: u32 = 1;
    pub const TASK_EXIT: u32 = 2;
    pub const TASK_RENAME: u32 = 3;
    pub const EXEC: u32 = 4;
    pub const THREAD_FINAL: u32 = 5;
    pub const SEGMENT: u32 = 6;
}

/// First bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    pub kind: u32,
    /// Thread the record is about.
    pub tid: u32,
    pub tgid: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_ns()` when it happened.
    pub ts: u64,
}

/// A traced thread created a thread (or, when following children, a
/// process).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskNewEvent {
    /// `tid`/`tgid` are the new task's.
    pub hdr: EventHeader,
    pub parent_tid: u32,
    pub parent_tgid: u32,
    pub clone_flags: u64,
    pub comm: [u8; TASK_COMM_LEN],
    /// User stack of the creating thread (id in `STACKS`, -1 = none).
    pub stack: i32,
    /// Bytes of `stack_copy` read (0: stacks off or unreadable).
    pub stack_copy_len: u32,
    /// The creating thread's user registers at clone.
    pub user_ip: u64,
    pub user_sp: u64,
    /// The top of the creating thread's user stack, from `user_sp` up: a
    /// frame-pointer walk stops in libc (built without frame pointers), so
    /// userspace looks for the caller's frame chain in here instead.
    pub stack_copy: [u8; STACK_COPY_LEN],
}

/// Bytes of user stack copied at thread creation.
pub const STACK_COPY_LEN: usize = 2048;

/// Timeline: one on-CPU period and the off-CPU period after it, streamed
/// when the thread switches back in (`hdr.ts` = switch-in time), or at its
/// final switch-out (`off_start` = exit, `hdr.ts` = 0 then).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SegmentEvent {
    pub hdr: EventHeader,
    /// Switch-in that began the on-CPU period (0: before recording).
    pub on_start: u64,
    /// Switch-out that ended it.
    pub off_start: u64,
    /// First wakeup in the off-CPU period, 0 if none.
    pub wake: u64,
    /// [`reason`] of the off-CPU period; `u32::MAX` for a final switch-out.
    pub reason: u32,
    /// Syscall it was in, -1 if none.
    pub syscall: i32,
    /// User stack at switch-out (`STACKS` id, -1 if none).
    pub ustack: i32,
    pub _pad: u32,
}

/// A traced thread entered `do_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskExitEvent {
    pub hdr: EventHeader,
    pub comm: [u8; TASK_COMM_LEN],
}

/// A traced thread's comm changed (prctl, pthread_setname_np, exec).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskRenameEvent {
    pub hdr: EventHeader,
    pub newcomm: [u8; TASK_COMM_LEN],
}

/// A traced process exec'd a new program.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    /// `tid` is the thread after exec (the group leader).
    pub hdr: EventHeader,
    /// The thread that called exec (differs from `tid` when a non-leader
    /// thread exec'd).
    pub old_tid: u32,
    pub _pad: u32,
    pub filename: [u8; EXEC_FILENAME_LEN],
}

/// A traced thread switched out for the last time: its final counters. The
/// kernel removes its `THREADS` entry once this is streamed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThreadFinalEvent {
    pub hdr: EventHeader,
    pub rec: ThreadRec,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain `#[repr(C)]` integers with explicit padding; every bit
    // pattern is valid.
    unsafe impl aya::Pod for ThreadRec {}
    unsafe impl aya::Pod for SyscallKey {}
    unsafe impl aya::Pod for SyscallStat {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for OnCpuKey {}
    unsafe impl aya::Pod for OffCpuKey {}
    unsafe impl aya::Pod for OffCpuVal {}
}

//! Maps shared with userspace, and the counters every dropped record bumps.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf, StackTrace},
};
use profiler_common::{
    Config, OffCpuKey, OffCpuVal, OnCpuKey, SyscallKey, SyscallStat, TGID_SLOTS, ThreadRec,
};

/// Traced threads (key: tid). Doubles as the in-kernel filter. Userspace may
/// resize it before load.
#[map]
pub static THREADS: HashMap<u32, ThreadRec> = HashMap::with_max_entries(32768, 0);

/// The bystander filter: one byte per `tgid % TGID_SLOTS`, set (by
/// userspace when seeding, by `task_newtask` for followed children) before
/// any thread of that process enters `THREADS`, and never cleared. The
/// scheduler programs run for every switch and wakeup on the machine; for
/// a task whose slot is clear they stop after this inlined array load,
/// without a hash lookup. A set slot (a traced process, or one colliding
/// with it) goes on to `THREADS`, which decides.
#[map]
pub static TGIDS: Array<u8> = Array::with_max_entries(TGID_SLOTS, 0);

/// Off-CPU time per (thread, syscall) for threads that blocked in a syscall.
#[map]
pub static SYSCALLS: HashMap<SyscallKey, SyscallStat> = HashMap::with_max_entries(65536, 0);

/// Stacks (user and kernel), deduplicated by the kernel; ids are stored in
/// the maps below and in records.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

/// On-CPU samples per (thread, stacks).
#[map]
pub static ONCPU: HashMap<OnCpuKey, u64> = HashMap::with_max_entries(65536, 0);

/// Off-CPU time per (thread, reason, syscall, stacks).
#[map]
pub static OFFCPU: HashMap<OffCpuKey, OffCpuVal> = HashMap::with_max_entries(65536, 0);

/// Lifecycle records for userspace, in order.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Per-CPU counters, indexed by `profiler_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(profiler_common::counter::COUNT, 0);

/// Settings from userspace (index 0).
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Adds one to counter `index` on this CPU.
#[inline(always)]
pub fn bump(index: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot; programs do not migrate while running.
        unsafe { *p += 1 }
    }
}

/// Whether child processes of traced processes are traced too.
#[inline(always)]
pub fn follow_children() -> bool {
    CONFIG.get(0).is_some_and(|c| c.follow_children != 0)
}

/// Whether userspace ended the recording window.
#[inline(always)]
pub fn stopped() -> bool {
    CONFIG.get(0).is_some_and(|c| c.stopped != 0)
}

/// Whether stacks are captured.
#[inline(always)]
pub fn stacks_enabled() -> bool {
    CONFIG.get(0).is_some_and(|c| c.stacks != 0)
}

/// Whether timeline records are streamed.
#[inline(always)]
pub fn timeline_enabled() -> bool {
    CONFIG.get(0).is_some_and(|c| c.timeline != 0)
}

/// Whether process `tgid` may be traced (false: certainly not).
#[inline(always)]
pub fn maybe_traced(tgid: u32) -> bool {
    TGIDS.get(tgid & (TGID_SLOTS - 1)).is_some_and(|b| *b != 0)
}

/// Lets process `tgid` through the bystander filter.
#[inline(always)]
pub fn mark_traced(tgid: u32) {
    if let Some(b) = TGIDS.get_ptr_mut(tgid & (TGID_SLOTS - 1)) {
        // SAFETY: a byte store; concurrent stores all write 1.
        unsafe { *b = 1 }
    }
}

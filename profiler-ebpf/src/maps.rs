//! Maps shared with userspace, and the counters every dropped record bumps.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf, StackTrace},
};
use profiler_common::{Config, OffCpuKey, OffCpuVal, OnCpuKey, SyscallKey, SyscallStat, ThreadRec};

/// Traced threads (key: tid). Doubles as the in-kernel filter. Userspace may
/// resize it before load.
#[map]
pub static THREADS: HashMap<u32, ThreadRec> = HashMap::with_max_entries(32768, 0);

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

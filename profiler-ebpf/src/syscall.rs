//! Which syscall the current thread is in, read from the user registers the
//! kernel saved on entry (`bpf_task_pt_regs`), without hooking every
//! syscall.
//!
//! On x86_64 the entry code stores the syscall number in `orig_ax` and sets
//! `ax` to `-ENOSYS` until the syscall returns. Exceptions (page faults...)
//! store an error code, which is also small and non-negative, in `orig_ax`,
//! but leave the user's `ax` there: so a thread counts as "in a syscall"
//! only when `ax == -ENOSYS` and `orig_ax` is a plausible number. Interrupts
//! store a negative vector. A page fault taken *inside* a syscall (copying
//! a user buffer) keeps the syscall's registers at the top of the stack, so
//! it is still attributed to that syscall, which is what a user expects.

use profiler_common::{MAX_SYSCALL_NR, SyscallKey, SyscallStat, counter};

use crate::{
    maps::{SYSCALLS, bump},
    regs::UserRegs,
};

const ENOSYS: i64 = 38;

/// The syscall number the thread with saved registers `r` is in, or -1.
#[inline(always)]
pub fn from_regs(r: &UserRegs) -> i32 {
    if r.ax as i64 == -ENOSYS && r.orig_ax < MAX_SYSCALL_NR {
        r.orig_ax as i32
    } else {
        -1
    }
}

/// Adds one off-CPU episode of `dt` ns inside syscall `nr` to thread `tid`.
#[inline(always)]
pub fn account(tid: u32, nr: u32, dt: u64) {
    let key = SyscallKey { tid, nr };
    match SYSCALLS.get_ptr_mut(key) {
        Some(s) => {
            // SAFETY: only the CPU switching `tid` in updates its entries.
            let s = unsafe { &mut *s };
            s.count += 1;
            s.total_ns += dt;
            if dt > s.max_ns {
                s.max_ns = dt;
            }
        }
        None => {
            let s = SyscallStat {
                count: 1,
                total_ns: dt,
                max_ns: dt,
            };
            if SYSCALLS.insert(key, s, 0).is_err() {
                bump(counter::LOST_SYSCALLS_FULL);
            }
        }
    }
}

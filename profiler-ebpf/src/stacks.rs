//! Stack capture into the shared `STACKS` map, with the per-thread cache
//! that makes off-CPU stacks cheap for threads that block again and again
//! at the same place (see `ThreadRec::cache`).

use aya_ebpf::{EbpfContext, programs::tracing::StackIdContext};
use profiler_common::{STACK_CACHE_MAX_AGE, STACK_CACHE_SLOTS, StackCacheSlot, ThreadRec, counter};

use crate::{
    maps::{STACKS, bump, stacks_enabled},
    regs::UserRegs,
};

const BPF_F_USER_STACK: u64 = 1 << 8;
const EFAULT: i32 = 14;

/// A stack id of the current context, -1 when there is none (no user
/// context, no kernel frames). Failures to store are counted.
#[inline(always)]
pub fn stack_id<C: EbpfContext + StackIdContext>(ctx: &C, user: bool) -> i32 {
    let flags = if user { BPF_F_USER_STACK } else { 0 };
    match ctx.get_stackid(&STACKS, flags) {
        Ok(id) => id as i32,
        Err(e) if -e == EFAULT => -1,
        // EEXIST: hash collision with another stack (the map never evicts);
        // ERANGE and others: the walk failed under load.
        Err(_) => {
            bump(counter::LOST_STACKS);
            -1
        }
    }
}

/// Captures (or reuses) the stacks of a thread going off CPU; the kernel
/// stack only when `kernel`.
#[inline(always)]
pub fn off_cpu<C: EbpfContext + StackIdContext>(
    ctx: &C,
    rec: &mut ThreadRec,
    regs: &Option<UserRegs>,
    nr: i32,
    kernel: bool,
) {
    if !stacks_enabled() {
        rec.off_ustack = -1;
        rec.off_kstack = -1;
        return;
    }
    let (ip, sp, bp) = match regs {
        Some(r) => (r.ip, r.sp, r.bp),
        None => (0, 0, 0),
    };
    // A user-only capture is remembered under its own key, so that a later
    // capture with a kernel stack never reuses it.
    let nr = if kernel { nr } else { i32::MIN };
    let same = |s: &StackCacheSlot| ip != 0 && s.ip == ip && s.sp == sp && s.bp == bp && s.nr == nr;
    // The slot to reuse or refill: the one captured at this place, else
    // the one not used last.
    let mut victim = 1 - (rec.cache_last & 1);
    for i in 0..STACK_CACHE_SLOTS {
        let slot = &mut rec.cache[i];
        if same(slot) {
            if slot.age < STACK_CACHE_MAX_AGE {
                slot.age += 1;
                rec.off_ustack = slot.ustack;
                rec.off_kstack = slot.kstack;
                rec.cache_last = i as u32;
                bump(counter::STACK_CACHE_HITS);
                return;
            }
            victim = i as u32;
        }
    }
    let ustack = stack_id(ctx, true);
    let kstack = if kernel { stack_id(ctx, false) } else { -1 };
    rec.off_ustack = ustack;
    rec.off_kstack = kstack;
    rec.cache_last = victim;
    // Indexing with a checked constant keeps the verifier's bounds simple.
    let slot = if victim == 0 {
        &mut rec.cache[0]
    } else {
        &mut rec.cache[1]
    };
    // A failed walk is not remembered: the next switch tries again.
    let ok = ip != 0 && (ustack >= 0 || kstack >= 0);
    *slot = StackCacheSlot {
        ip: if ok { ip } else { 0 },
        sp,
        bp,
        nr,
        age: 0,
        ustack,
        kstack,
    };
}

/// The user stack of the current thread creating a thread, reused from
/// `slot` when it creates from the same place again (same ip, sp, bp),
/// with a fresh walk every `STACK_CACHE_MAX_AGE` reuses. User stack walks
/// are the expensive part of `task_newtask` (about 10 µs on the bench VM,
/// against 2 µs for the rest of it).
#[inline(always)]
pub fn creation<C: EbpfContext + StackIdContext>(
    ctx: &C,
    slot: &mut StackCacheSlot,
    regs: &Option<UserRegs>,
) -> i32 {
    let (ip, sp, bp) = match regs {
        Some(r) => (r.ip, r.sp, r.bp),
        None => (0, 0, 0),
    };
    if ip != 0 && slot.ip == ip && slot.sp == sp && slot.age < STACK_CACHE_MAX_AGE {
        slot.age += 1;
        bump(counter::STACK_CACHE_HITS);
        return slot.ustack;
    }
    let ustack = stack_id(ctx, true);
    *slot = StackCacheSlot {
        ip: if ustack >= 0 { ip } else { 0 },
        sp,
        bp,
        nr: 0,
        age: 0,
        ustack,
        kstack: -1,
    };
    ustack
}

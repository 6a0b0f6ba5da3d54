//! Stack capture into the shared `STACKS` map, with the per-thread cache
//! that makes off-CPU stacks cheap for threads that block again and again
//! at the same place (see `ThreadRec::cache_*`).

use aya_ebpf::{EbpfContext, programs::tracing::StackIdContext};
use profiler_common::{STACK_CACHE_MAX_AGE, ThreadRec, counter};

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

/// Captures (or reuses) the stacks of a thread going off CPU.
#[inline(always)]
pub fn off_cpu<C: EbpfContext + StackIdContext>(
    ctx: &C,
    rec: &mut ThreadRec,
    regs: &Option<UserRegs>,
    nr: i32,
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
    if rec.cache_age < STACK_CACHE_MAX_AGE
        && rec.off_ustack >= 0
        && ip != 0
        && ip == rec.cache_ip
        && sp == rec.cache_sp
        && bp == rec.cache_bp
        && nr == rec.cache_nr
    {
        rec.cache_age += 1;
        bump(counter::STACK_CACHE_HITS);
        return;
    }
    rec.off_ustack = stack_id(ctx, true);
    rec.off_kstack = stack_id(ctx, false);
    rec.cache_ip = ip;
    rec.cache_sp = sp;
    rec.cache_bp = bp;
    rec.cache_nr = nr;
    rec.cache_age = 0;
}

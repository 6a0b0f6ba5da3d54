//! Context switches and wakeups of traced threads: on-CPU time, off-CPU time
//! split by reason, voluntary/involuntary switch counts, and the blocking
//! syscall of each off-CPU period. Aggregated here, in the thread's
//! `THREADS` entry; nothing is streamed per switch.
//!
//! At switch-out the thread's state says why it leaves the CPU; at the
//! first wakeup after that it becomes runnable; at switch-in the period
//! closes: `out..wake` goes to the reason's bucket, `wake..in` to runnable
//! (waiting for a CPU).

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::btf_tracepoint, programs::BtfTracePointContext};
use profiler_common::{
    ATTACH_STACK, OffCpuKey, OffCpuVal, ThreadRec, counter, reason, state,
    thread_flags::{OFF_CPU, ON_CPU, SEEDED},
};

use crate::{
    lifecycle,
    maps::{OFFCPU, THREADS, bump, maybe_traced, stopped, timeline_enabled},
    regs, stacks, syscall, task,
};

/// BTF tracepoint (`tp_btf`): args are `TP_PROTO(bool preempt, struct
/// task_struct *prev, struct task_struct *next, unsigned int prev_state)`,
/// passed as they are, with the task pointers typed for the verifier. It
/// runs for every switch on the machine, so a bystander's switch costs two
/// pairs of field loads and two inlined filter loads (`maps::maybe_traced`)
/// and nothing else: no trace record is built, no helper is called, no
/// hash is looked up. `prev` is the current task.
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> u32 {
    let (prev, prev_tgid) = task::btf_ids(ctx.arg::<*const u8>(1));
    let (next, next_tgid) = task::btf_ids(ctx.arg::<*const u8>(2));
    let mut now = 0;
    if maybe_traced(prev_tgid)
        && let Some(rec) = THREADS.get_ptr_mut(prev)
    {
        if stopped() {
            return 0;
        }
        now = unsafe { bpf_ktime_get_ns() };
        let preempt: u64 = ctx.arg(0);
        let raw_state: u64 = ctx.arg(3);
        let prev_state = reported_state(preempt & 0xff != 0, raw_state & 0xffff_ffff);
        // SAFETY: a thread switches out on one CPU at a time; its entry is
        // only written by the CPU switching it.
        switch_out(&ctx, prev, unsafe { &mut *rec }, prev_state, now);
        bump(counter::SWITCHES);
    }
    if maybe_traced(next_tgid)
        && let Some(rec) = THREADS.get_ptr_mut(next)
    {
        if stopped() {
            return 0;
        }
        if now == 0 {
            now = unsafe { bpf_ktime_get_ns() };
        }
        // SAFETY: as above, for the CPU switching `next` in.
        switch_in(next, unsafe { &mut *rec }, now);
    }
    0
}

/// The raw task state as the classic `sched_switch` tracepoint reports it
/// (`__trace_sched_switch_state`): `PREEMPTED` when preempted, one of the
/// report bits otherwise, a dead task as `EXIT_DEAD`.
#[inline(always)]
fn reported_state(preempt: bool, raw: u64) -> u64 {
    const TASK_DEAD: u64 = 0x80;
    const TASK_REPORT: u64 = 0x7f;
    if preempt {
        state::PREEMPTED
    } else if raw & TASK_DEAD != 0 {
        state::EXIT_DEAD
    } else {
        raw & TASK_REPORT
    }
}

/// Fires for wakeups of sleeping/blocked/stopped tasks (not for preempted
/// ones, which stay runnable). `TP_PROTO(struct task_struct *p)`; filtered
/// as `sched_switch` is.
#[btf_tracepoint(function = "sched_wakeup")]
pub fn sched_wakeup(ctx: BtfTracePointContext) -> u32 {
    let (pid, tgid) = task::btf_ids(ctx.arg::<*const u8>(0));
    if maybe_traced(tgid)
        && let Some(rec) = THREADS.get_ptr_mut(pid)
    {
        // SAFETY: only the first wakeup of an off-CPU period is stored; a
        // racing second wakeup writes a nearly equal timestamp.
        let rec = unsafe { &mut *rec };
        if rec.flags & OFF_CPU != 0 && rec.wake_ts == 0 {
            rec.wake_ts = unsafe { bpf_ktime_get_ns() };
            bump(counter::WAKEUPS);
        }
    }
    0
}

#[inline(always)]
fn switch_out(
    ctx: &BtfTracePointContext,
    tid: u32,
    rec: &mut ThreadRec,
    prev_state: u64,
    now: u64,
) {
    // `last_ts` is the switch-in time, or, for a thread that was running
    // when recording started (seeded off-CPU at the window start and never
    // seen switching in), the window start: either way the thread was on
    // CPU since then.
    rec.on_cpu_ns += now.saturating_sub(rec.last_ts);
    // /proc counts a switch as voluntary when the task was not preempted and
    // its state was not RUNNING.
    if prev_state == state::RUNNING || prev_state == state::PREEMPTED {
        rec.involuntary += 1;
    } else {
        rec.voluntary += 1;
    }
    if prev_state & (state::EXIT_DEAD | state::EXIT_ZOMBIE) != 0 {
        if timeline_enabled() {
            rec.last_ts = now;
            rec.off_reason = u32::MAX;
            lifecycle::segment(tid, rec, 0);
        }
        rec.flags &= !(ON_CPU | OFF_CPU);
        rec.last_ts = now;
        lifecycle::thread_final(tid, rec, now);
        return;
    }
    let why = if prev_state == state::RUNNING || prev_state == state::PREEMPTED {
        reason::RUNNABLE
    } else if prev_state & (state::UNINTERRUPTIBLE | state::IDLE) != 0 {
        reason::BLOCKED
    } else if prev_state & (state::STOPPED | state::TRACED) != 0 {
        reason::STOPPED
    } else {
        reason::SLEEPING
    };
    let regs = regs::current();
    rec.off_syscall = match (&regs, why) {
        (Some(r), reason::SLEEPING | reason::BLOCKED) => syscall::from_regs(r),
        _ => -1,
    };
    // A preempted thread's kernel stack is the interrupt or return-to-user
    // path that preempted it, the same every time and telling nothing; its
    // user stack says where it was. Walking only that halves the cost of
    // preemptions, whose user ip differs every time (no cache hits).
    stacks::off_cpu(ctx, rec, &regs, rec.off_syscall, why != reason::RUNNABLE);
    rec.off_reason = why;
    rec.flags = (rec.flags & !(ON_CPU | SEEDED)) | OFF_CPU;
    rec.last_ts = now;
    rec.wake_ts = 0;
}

#[inline(always)]
fn switch_in(tid: u32, rec: &mut ThreadRec, now: u64) {
    if rec.flags & OFF_CPU != 0 && timeline_enabled() {
        lifecycle::segment(tid, rec, now);
    }
    if rec.flags & OFF_CPU != 0 {
        let start = rec.last_ts;
        let off = now.saturating_sub(start);
        if rec.off_reason == reason::RUNNABLE {
            rec.runnable_ns += off;
        } else {
            let wake = if rec.wake_ts >= start && rec.wake_ts <= now && rec.wake_ts != 0 {
                rec.wake_ts
            } else {
                now
            };
            let waiting = wake - start;
            if rec.off_reason == reason::BLOCKED {
                rec.blocked_ns += waiting;
            } else if rec.off_reason == reason::STOPPED {
                rec.stopped_ns += waiting;
            } else {
                rec.sleeping_ns += waiting;
            }
            rec.runnable_ns += now - wake;
        }
        if rec.off_syscall >= 0 {
            syscall::account(tid, rec.off_syscall as u32, off);
        }
        if rec.off_ustack >= 0 || rec.off_kstack >= 0 {
            account_stack(tid, rec, rec.off_ustack, rec.off_kstack, off);
        } else if rec.flags & SEEDED != 0 {
            // The period that began before attach: userspace read this
            // thread's stack from /proc at attach ("attach stack", -2).
            account_stack(tid, rec, ATTACH_STACK, ATTACH_STACK, off);
        }
    }
    rec.flags = (rec.flags & !(OFF_CPU | SEEDED)) | ON_CPU;
    rec.last_ts = now;
    rec.on_since = now;
    rec.wake_ts = 0;
}

/// Adds an off-CPU period to the per-stack aggregation.
#[inline(always)]
fn account_stack(tid: u32, rec: &ThreadRec, ustack: i32, kstack: i32, off: u64) {
    let key = OffCpuKey {
        tid,
        reason: rec.off_reason,
        syscall: rec.off_syscall,
        ustack,
        kstack,
        _pad: 0,
    };
    match OFFCPU.get_ptr_mut(key) {
        Some(v) => {
            // SAFETY: only the CPU switching `tid` in updates its keys.
            let v = unsafe { &mut *v };
            v.total_ns += off;
            v.count += 1;
        }
        None => {
            let v = OffCpuVal {
                total_ns: off,
                count: 1,
            };
            if OFFCPU.insert(key, v, 0).is_err() {
                bump(counter::LOST_OFFCPU);
            }
        }
    }
}

//! Thread and process lifecycle of traced tasks, streamed through the ring
//! buffer in order: creation (and the start of tracing of the new task),
//! exit, final counters, rename, exec. A record that does not fit is
//! counted in `COUNTERS[LOST_RINGBUF]`.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_buf,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use profiler_common::{
    EXEC_FILENAME_LEN, EventHeader, ExecEvent, STACK_COPY_LEN, SegmentEvent, TASK_COMM_LEN,
    TaskExitEvent, TaskNewEvent, TaskRenameEvent, ThreadFinalEvent, ThreadRec, counter, event_kind,
    reason,
    thread_flags::{DEAD, OFF_CPU},
    tp as off,
};

use crate::{
    maps::{EVENTS, THREADS, bump, follow_children, mark_traced, stacks_enabled},
    regs, stacks,
    tp::field,
};

const CLONE_THREAD: u64 = 0x0001_0000;

#[inline(always)]
fn header(kind: u32, tid: u32, tgid: u32, ts: u64) -> EventHeader {
    EventHeader {
        kind,
        tid,
        tgid,
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts,
    }
}

/// Streams a thread-level record (exit, final counters, rename), counting
/// it as lost when the buffer is full, with a batched wakeup.
#[inline(always)]
fn emit<T: 'static>(value: T) -> bool {
    let written = write(value, batched_wakeup());
    bump(if written {
        counter::RECORDS
    } else {
        counter::LOST_RINGBUF
    });
    written
}

/// Puts `value` in the ring buffer, submitting with `flags`; false when
/// it is full.
#[inline(always)]
fn write<T: 'static>(value: T, flags: u64) -> bool {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(value);
            entry.submit(flags);
            true
        }
        None => false,
    }
}

/// Submit flags for records nobody waits for (timeline segments, thread
/// lifecycle): no wakeup (the reader drains at least every 200 ms anyway),
/// unless a quarter of the ring is waiting. Waking the reader costs the
/// traced CPU an inter-processor interrupt (irq_work), which in a VM is a
/// trap to the hypervisor: `task_newtask` measured 11.4 µs per call with a
/// wakeup per record. Records that start something userspace must catch
/// quickly (a new process, an exec: its mappings are read from /proc)
/// still wake it.
#[inline(always)]
fn batched_wakeup() -> u64 {
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    const BPF_RB_AVAIL_DATA: u64 = 0;
    const BPF_RB_RING_SIZE: u64 = 1;
    if EVENTS.query(BPF_RB_AVAIL_DATA) > EVENTS.query(BPF_RB_RING_SIZE) / 4 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Runs in the parent's context, before the child first runs.
#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let parent_tid = pid_tgid as u32;
    let parent_tgid = (pid_tgid >> 32) as u32;
    let Some(parent) = THREADS.get_ptr_mut(parent_tid) else {
        return 0;
    };
    let child = field::<i32>(&ctx, off::TASK_NEWTASK_PID) as u32;
    let clone_flags = field::<u64>(&ctx, off::TASK_NEWTASK_CLONE_FLAGS);
    let tgid = if clone_flags & CLONE_THREAD != 0 {
        parent_tgid
    } else if follow_children() {
        child
    } else {
        return 0;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    // A new task is runnable from its creation until it first runs.
    let rec = ThreadRec {
        tgid,
        flags: OFF_CPU,
        last_ts: now,
        off_reason: reason::RUNNABLE,
        off_syscall: -1,
        off_ustack: -1,
        off_kstack: -1,
        // Its timeline starts at creation, not at the window start.
        on_since: now,
        ..ThreadRec::default()
    };
    if tgid != parent_tgid {
        mark_traced(tgid);
    }
    if THREADS.insert(child, rec, 0).is_err() {
        bump(counter::LOST_THREADS_FULL);
        return 0;
    }
    let mut comm = [0u8; TASK_COMM_LEN];
    let base = unsafe { ctx.as_ptr().cast::<u8>().add(off::TASK_NEWTASK_COMM) };
    let _ = unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_buf(base, &mut comm) };
    let Some(mut entry) = EVENTS.reserve::<TaskNewEvent>(0) else {
        bump(counter::LOST_RINGBUF);
        return 0;
    };
    // Built in place: the stack copy does not fit the 512-byte BPF stack.
    let ev = entry.as_mut_ptr();
    let stacks = stacks_enabled();
    // SAFETY: `ev` points into the reserved record; user memory is read with
    // bpf_probe_read_user, which cannot fault.
    unsafe {
        (*ev).hdr = header(event_kind::TASK_NEW, child, tgid, now);
        (*ev).parent_tid = parent_tid;
        (*ev).parent_tgid = parent_tgid;
        (*ev).clone_flags = clone_flags;
        (*ev).comm = comm;
        (*ev).stack = -1;
        (*ev).stack_copy_len = 0;
        (*ev).user_ip = 0;
        (*ev).user_sp = 0;
        let regs = if stacks { regs::current() } else { None };
        if stacks {
            // SAFETY: the parent's entry is only written by the parent's
            // own programs, and it is running this one.
            (*ev).stack = stacks::creation(&ctx, &mut (*parent).create_cache, &regs);
        }
        if let Some(r) = regs {
            (*ev).user_ip = r.ip;
            (*ev).user_sp = r.sp;
            if bpf_probe_read_user_buf(r.sp as *const u8, &mut (*ev).stack_copy).is_ok() {
                (*ev).stack_copy_len = STACK_COPY_LEN as u32;
            }
        }
    }
    // A new process's mappings must be read while it lives: wake the
    // reader now. Threads share their process's, already read.
    entry.submit(if tgid != parent_tgid {
        0
    } else {
        batched_wakeup()
    });
    bump(counter::RECORDS);
    0
}

/// Runs in the exiting thread's context at the start of `do_exit`.
#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let tid = field::<i32>(&ctx, off::SCHED_PROCESS_EXIT_PID) as u32;
    let Some(rec) = THREADS.get_ptr(tid) else {
        return 0;
    };
    let tgid = unsafe { (*rec).tgid };
    let comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; TASK_COMM_LEN]);
    emit(TaskExitEvent {
        hdr: header(event_kind::TASK_EXIT, tid, tgid, unsafe {
            bpf_ktime_get_ns()
        }),
        comm,
    });
    0
}

#[tracepoint]
pub fn task_rename(ctx: TracePointContext) -> u32 {
    let tid = field::<i32>(&ctx, off::TASK_RENAME_PID) as u32;
    let Some(rec) = THREADS.get_ptr(tid) else {
        return 0;
    };
    let tgid = unsafe { (*rec).tgid };
    let mut newcomm = [0u8; TASK_COMM_LEN];
    let base = unsafe { ctx.as_ptr().cast::<u8>().add(off::TASK_RENAME_NEWCOMM) };
    let _ = unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_buf(base, &mut newcomm) };
    emit(TaskRenameEvent {
        hdr: header(event_kind::TASK_RENAME, tid, tgid, unsafe {
            bpf_ktime_get_ns()
        }),
        newcomm,
    });
    0
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let tid = field::<i32>(&ctx, off::SCHED_PROCESS_EXEC_PID) as u32;
    let old_tid = field::<i32>(&ctx, off::SCHED_PROCESS_EXEC_OLD_PID) as u32;
    let Some(rec) = THREADS.get_ptr(old_tid) else {
        return 0;
    };
    let rec = unsafe { *rec };
    if old_tid != tid {
        // A non-leader thread exec'd and took over the leader's tid: its
        // accounting moves with it.
        let _ = THREADS.insert(tid, rec, 0);
        let _ = THREADS.remove(old_tid);
    }
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        bump(counter::LOST_RINGBUF);
        return 0;
    };
    // Build in place: the event is too large for the 512-byte BPF stack.
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).hdr = header(event_kind::EXEC, tid, rec.tgid, bpf_ktime_get_ns());
        (*ev).old_tid = old_tid;
        (*ev)._pad = 0;
        (*ev).filename = [0; EXEC_FILENAME_LEN];
        let loc = field::<u32>(&ctx, off::SCHED_PROCESS_EXEC_FILENAME);
        let src = ctx.as_ptr().cast::<u8>().add((loc & 0xffff) as usize);
        let _ = bpf_probe_read_kernel_str_bytes(src, &mut (*ev).filename);
    }
    entry.submit(0);
    bump(counter::RECORDS);
    0
}

/// Streams the final counters of a thread at its last switch-out and stops
/// tracing it. When the record does not fit, the entry stays, flagged dead,
/// for userspace to collect at the end: nothing is lost.
#[inline(always)]
pub fn thread_final(tid: u32, rec: &mut ThreadRec, now: u64) {
    let tgid = rec.tgid;
    if emit(ThreadFinalEvent {
        hdr: header(event_kind::THREAD_FINAL, tid, tgid, now),
        rec: *rec,
    }) {
        let _ = THREADS.remove(tid);
    } else {
        rec.flags |= DEAD;
    }
}

/// Streams the timeline record of `rec`'s last on-CPU period and the
/// off-CPU period after it, ending at `end` (0 for a final switch-out).
#[inline(always)]
pub fn segment(tid: u32, rec: &ThreadRec, end: u64) {
    let written = write(
        SegmentEvent {
            hdr: header(event_kind::SEGMENT, tid, rec.tgid, end),
            on_start: rec.on_since,
            off_start: rec.last_ts,
            wake: rec.wake_ts,
            reason: rec.off_reason,
            syscall: rec.off_syscall,
            ustack: rec.off_ustack,
            _pad: 0,
        },
        batched_wakeup(),
    );
    if !written {
        bump(counter::LOST_SEGMENTS);
    }
}

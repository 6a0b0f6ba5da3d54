//! On-CPU sampling: a `cpu-clock` perf event on every CPU at `--freq` Hz;
//! samples of traced threads are counted per (thread, user stack, kernel
//! stack) in the kernel.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::perf_event, programs::PerfEventContext};
use profiler_common::{OnCpuKey, counter};

use crate::{
    maps::{ONCPU, THREADS, bump, stopped},
    stacks::stack_id,
};

#[perf_event]
pub fn on_cpu_sample(ctx: PerfEventContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    if tid == 0 || THREADS.get_ptr(tid).is_none() || stopped() {
        return 0;
    }
    bump(counter::SAMPLES);
    let key = OnCpuKey {
        tid,
        ustack: stack_id(&ctx, true),
        kstack: stack_id(&ctx, false),
        _pad: 0,
    };
    match ONCPU.get_ptr_mut(key) {
        // SAFETY: per-key counter; a lost increment under a race between
        // two CPUs sampling the same thread is impossible (one CPU at a
        // time runs a thread).
        Some(n) => unsafe { *n += 1 },
        None => {
            if ONCPU.insert(key, 1u64, 0).is_err() {
                bump(counter::LOST_SAMPLES);
            }
        }
    }
    0
}

//! Kernel side of `profiler`: one module per concern.
//!
//! - [`maps`]: every map shared with userspace, and the drop counters.
//! - [`sched`]: context switches and wakeups: per-thread on/off-CPU time.
//! - [`lifecycle`]: thread creation, exit, rename and exec, streamed.
//! - [`syscall`]: which syscall a thread is blocked in, from its saved
//!   user registers (no sys_enter/sys_exit hooks).
//! - [`regs`]: those saved user registers.
//! - [`stacks`]: stack capture, with the per-thread off-CPU stack cache.
//! - [`oncpu`]: on-CPU sampling (perf `cpu-clock`).
//! - [`task`]: reading `task_struct` fields at offsets userspace found in
//!   the kernel's BTF.
//! - [`tp`]: reading tracepoint fields.
#![no_std]
#![no_main]

mod lifecycle;
mod maps;
mod oncpu;
mod regs;
mod sched;
mod stacks;
mod syscall;
mod task;
mod tp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Tracing helpers (`bpf_probe_read_kernel`, `bpf_task_pt_regs`...) are
/// GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

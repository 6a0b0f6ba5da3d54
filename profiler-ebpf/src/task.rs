//! Reading `task_struct` fields. Rust eBPF programs have no CO-RE
//! relocations, so userspace reads the offsets from the running kernel's
//! BTF and sets them here before load (`EbpfLoader::override_global`).

use aya_ebpf::helpers::bpf_probe_read_kernel;

/// Offset of `task_struct.pid`, set by userspace.
#[unsafe(no_mangle)]
static TASK_PID_OFFSET: u32 = 0;

/// The pid (thread id) of `task`, 0 when unreadable.
#[inline(always)]
pub fn pid(task: *const u8) -> u32 {
    // SAFETY: the global is written by the loader; the read goes through
    // bpf_probe_read_kernel, which cannot fault.
    unsafe {
        let off = core::ptr::read_volatile(&TASK_PID_OFFSET) as usize;
        if task.is_null() || off == 0 {
            return 0;
        }
        bpf_probe_read_kernel(task.add(off).cast::<i32>())
            .map(|p| p as u32)
            .unwrap_or(0)
    }
}

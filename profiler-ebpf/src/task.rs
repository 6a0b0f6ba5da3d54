//! Reading `task_struct` fields. Rust eBPF programs have no CO-RE
//! relocations, so userspace reads the offsets from the running kernel's
//! BTF and sets them here before load (`EbpfLoader::override_global`).
//! They live in `.rodata`, which the loader freezes: the verifier then
//! knows them as constants, which is what lets BTF-typed programs load
//! the fields directly.

/// Offset of `task_struct.pid`, set by userspace.
#[unsafe(no_mangle)]
static TASK_PID_OFFSET: u32 = 0;

/// Offset of `task_struct.tgid`, set by userspace.
#[unsafe(no_mangle)]
static TASK_TGID_OFFSET: u32 = 0;

/// (pid, tgid) of a task given as a BTF-typed `task_struct *` argument
/// (a `tp_btf` program's): two direct loads, which the verifier turns into
/// fault-handling loads of the known fields, with no helper call.
#[inline(always)]
pub fn btf_ids(task: *const u8) -> (u32, u32) {
    // SAFETY: the verifier checks these loads against the task_struct type
    // at the (constant) offsets and makes them fault-safe.
    unsafe {
        let pid_off = core::ptr::read_volatile(&TASK_PID_OFFSET) as usize;
        let tgid_off = core::ptr::read_volatile(&TASK_TGID_OFFSET) as usize;
        let pid = core::ptr::read_volatile(task.add(pid_off).cast::<u32>());
        let tgid = core::ptr::read_volatile(task.add(tgid_off).cast::<u32>());
        (pid, tgid)
    }
}

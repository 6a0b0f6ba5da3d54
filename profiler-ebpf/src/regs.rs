//! The user registers the kernel saved when the current thread entered it
//! (`bpf_task_pt_regs`), read in one helper call.

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
};

/// The slots of x86_64 `struct pt_regs` we use.
#[derive(Clone, Copy, Default)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    pub ax: u64,
    pub orig_ax: u64,
}

/// x86_64 `struct pt_regs`: 21 u64 slots.
const PT_REGS_SLOTS: usize = 21;
const BP: usize = 4;
const AX: usize = 10;
const ORIG_AX: usize = 15;
const IP: usize = 16;
const SP: usize = 19;

/// The current task's saved user registers; `None` off x86_64 or when the
/// read fails.
#[inline(always)]
pub fn current() -> Option<UserRegs> {
    if !cfg!(bpf_target_arch = "x86_64") {
        return None;
    }
    // SAFETY: helpers on the current task; the read goes through
    // bpf_probe_read_kernel, which cannot fault.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const [u64; PT_REGS_SLOTS];
        if regs.is_null() {
            return None;
        }
        let r = bpf_probe_read_kernel(regs).ok()?;
        Some(UserRegs {
            ip: r[IP],
            sp: r[SP],
            bp: r[BP],
            ax: r[AX],
            orig_ax: r[ORIG_AX],
        })
    }
}

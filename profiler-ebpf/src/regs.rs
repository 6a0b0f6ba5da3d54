//! The user registers the kernel saved when the current thread entered it
//! (`bpf_task_pt_regs`), read with direct loads.

use aya_ebpf::helpers::generated::{bpf_get_current_task_btf, bpf_task_pt_regs};

/// The slots of x86_64 `struct pt_regs` we use.
#[derive(Clone, Copy, Default)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    pub ax: u64,
    pub orig_ax: u64,
}

/// Slots of x86_64 `struct pt_regs` (u64 each).
const BP: usize = 4;
const AX: usize = 10;
const ORIG_AX: usize = 15;
const IP: usize = 16;
const SP: usize = 19;

/// The current task's saved user registers; `None` off x86_64 or when the
/// task has none.
#[inline(always)]
pub fn current() -> Option<UserRegs> {
    if !cfg!(bpf_target_arch = "x86_64") {
        return None;
    }
    // SAFETY: `bpf_task_pt_regs` returns a BTF-typed `struct pt_regs *`;
    // the verifier checks each load against that type and makes it
    // fault-safe, so five direct loads replace a copy of the whole struct.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u64;
        if regs.is_null() {
            return None;
        }
        let at = |slot: usize| core::ptr::read_volatile(regs.add(slot));
        Some(UserRegs {
            ip: at(IP),
            sp: at(SP),
            bp: at(BP),
            ax: at(AX),
            orig_ax: at(ORIG_AX),
        })
    }
}

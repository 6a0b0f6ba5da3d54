//! The stack of a thread that was already off CPU when recording started.
//!
//! Such a thread (an idle Go M parked in futex, a worker waiting on a
//! queue) may never switch during the recording, so the kernel side never
//! sees its stack. It is read from `/proc` instead, without stopping the
//! thread: `/proc/<tid>/syscall` gives its user stack pointer and program
//! counter, `/proc/<tid>/stack` its kernel frames, and `/proc/<pid>/mem`
//! the stack memory, in which the frame-pointer chain is found by looking
//! for the first (saved frame pointer, return address) pair above the
//! stack pointer that starts a consistent chain. Code built with frame
//! pointers (Go, most Rust and C with -fno-omit-frame-pointer) unwinds
//! fully; otherwise the stack has the leaf and its caller only.

use std::{fs::File, os::unix::fs::FileExt};

use super::maps::Mapping;

/// Stack read at attach: user addresses (leaf first, first exact) and
/// kernel function names (leaf first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachStack {
    pub user: Vec<u64>,
    pub kernel: Vec<String>,
}

/// How much of the stack is read.
const WINDOW: usize = 64 * 1024;
const MAX_FRAMES: usize = 127;

/// (sp, pc) from a `/proc/<tid>/syscall` line (`nr args... sp pc` or
/// `-1 sp pc`); `None` for `running`.
pub fn parse_sp_pc(s: &str) -> Option<(u64, u64)> {
    let t: Vec<&str> = s.split_whitespace().collect();
    if t.len() < 3 {
        return None;
    }
    let hex = |v: &str| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
    Some((hex(t[t.len() - 2])?, hex(t[t.len() - 1])?))
}

/// Kernel function names from `/proc/<tid>/stack` (`[<0>] name+0x1/0x2`).
pub fn parse_kernel_stack(s: &str) -> Vec<String> {
    s.lines()
        .filter_map(|l| {
            let name = l.split_once("] ")?.1;
            let name = name.split('+').next()?.trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// The target of the direct call (`e8 rel32`) that ends just before
/// `ret`, when there is one.
fn call_target(ret: u64, code: &dyn Fn(u64) -> Option<[u8; 5]>) -> Option<u64> {
    let b = code(ret.checked_sub(5)?)?;
    (b[0] == 0xe8).then(|| {
        let rel = i32::from_le_bytes([b[1], b[2], b[3], b[4]]);
        ret.wrapping_add_signed(i64::from(rel))
    })
}

/// Unwinds the user stack from `sp`/`pc` over `mem` (the bytes at `sp`),
/// accepting as return addresses only values inside `is_text`, and, where
/// the call before a return address is a direct call, only if it called
/// the function the frame below runs in (its target is at most 1 MiB
/// before that frame's address): stale links left in uninitialized locals
/// by earlier, deeper calls fail that check.
pub fn unwind(
    sp: u64,
    pc: u64,
    mem: &[u8],
    is_text: &dyn Fn(u64) -> bool,
    code: &dyn Fn(u64) -> Option<[u8; 5]>,
) -> Vec<u64> {
    let word = |addr: u64| -> Option<u64> {
        let off = addr.checked_sub(sp)? as usize;
        let b = mem.get(off..off + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    // Did the call ending at `ret` call the function `callee_ip` is in?
    let consistent = |ret: u64, callee_ip: u64| {
        call_target(ret, code).is_none_or(|t| t <= callee_ip && callee_ip - t < (1 << 20))
    };
    let top = sp + mem.len() as u64;
    // The link at `a` of the frame `callee_ip` runs in: the caller's saved
    // frame pointer and the return address into the caller.
    let link = |a: u64, callee_ip: u64| -> Option<(u64, u64)> {
        let bp = word(a)?;
        let ret = word(a + 8)?;
        let bp_ok = bp == 0 || (bp > a && bp < top);
        (is_text(ret) && bp_ok && consistent(ret, callee_ip)).then_some((bp, ret))
    };
    // Return addresses of the chain from `a`, and whether it reached the
    // end of the stack (a zero frame pointer).
    let walk = |mut a: u64, mut callee: u64, max: usize| -> (Vec<u64>, bool) {
        let mut v = Vec::new();
        while v.len() < max {
            let Some((bp, ret)) = link(a, callee) else {
                return (v, false);
            };
            v.push(ret);
            if bp == 0 {
                return (v, true);
            }
            callee = ret - 1;
            a = bp;
        }
        (v, false)
    };
    let mut out = vec![pc];
    // A frameless leaf (syscall wrapper) leaves its return address at sp.
    if let Some(ret) = word(sp).filter(|&r| is_text(r) && consistent(r, pc)) {
        out.push(ret);
    }
    let callee = if out.len() > 1 { out[1] - 1 } else { pc };
    // The first link above sp that starts a consistent chain of three
    // frames, or a shorter one that ends the stack.
    let start = (1..(4096 / 8) as u64).map(|i| sp + i * 8).find(|&a| {
        let (w, ended) = walk(a, callee, 3);
        w.len() == 3 || (ended && !w.is_empty())
    });
    if let Some(a) = start {
        let (rest, _) = walk(a, callee, MAX_FRAMES - out.len());
        out.extend(rest);
    }
    out
}

/// Reads the stack of thread `tid` of `pid` now, `None` when it is
/// running or unreadable.
pub fn read(pid: u32, tid: u32, maps: &[Mapping]) -> Option<AttachStack> {
    let dir = format!("/proc/{pid}/task/{tid}");
    let (sp, pc) = parse_sp_pc(&std::fs::read_to_string(format!("{dir}/syscall")).ok()?)?;
    let kernel = std::fs::read_to_string(format!("{dir}/stack"))
        .map(|s| parse_kernel_stack(&s))
        .unwrap_or_default();
    let mem = File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; WINDOW];
    // The stack may end before the window does: shrink until readable.
    let mut len = WINDOW;
    let n = loop {
        match mem.read_at(&mut buf[..len], sp) {
            Ok(n) => break n,
            Err(_) if len > 4096 => len /= 2,
            Err(_) => return None,
        }
    };
    buf.truncate(n);
    let is_text = |a: u64| maps.iter().any(|m| a >= m.start && a < m.end);
    let code = |a: u64| -> Option<[u8; 5]> {
        let mut b = [0u8; 5];
        (is_text(a) && mem.read_at(&mut b, a).ok()? == 5).then_some(b)
    };
    Some(AttachStack {
        user: unwind(sp, pc, &buf, &is_text, &code),
        kernel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            parse_sp_pc("202 0xc000 0x80 0x0 0x0 0x0 0x0 0x7ffd1000 0x467e43\n"),
            Some((0x7ffd1000, 0x467e43))
        );
        assert_eq!(
            parse_sp_pc("-1 0x7ffd1000 0x467e43\n"),
            Some((0x7ffd1000, 0x467e43))
        );
        assert_eq!(parse_sp_pc("running\n"), None);
        assert_eq!(
            parse_kernel_stack("[<0>] futex_wait_queue+0x60/0x90\n[<0>] __futex_wait+0x8a/0x120\n"),
            vec!["futex_wait_queue".to_string(), "__futex_wait".to_string()]
        );
    }

    #[test]
    fn finds_the_frame_pointer_chain_above_the_leaf() {
        let sp = 0x1000u64;
        let mut mem = vec![0u8; 0x200];
        let mut put = |addr: u64, v: u64| {
            let o = (addr - sp) as usize;
            mem[o..o + 8].copy_from_slice(&v.to_le_bytes());
        };
        put(0x1000, 0x4110); // leaf's return address (frameless leaf)
        put(0x1008, 0x1234); // junk: not a chain
        put(0x1010, 0x1020); // stale link -> 0x1020 ...
        put(0x1018, 0x4900); // ... returning into an unrelated caller
        put(0x1020, 0x1060); // live link -> next frame
        put(0x1028, 0x4220);
        put(0x1060, 0x10a0);
        put(0x1068, 0x4330);
        put(0x10a0, 0);
        put(0x10a8, 0x4440);
        let text = |a: u64| (0x4000..0x5000).contains(&a);
        // Direct calls: before 0x4110 a call to 0x4000 (the leaf's
        // function), before 0x4220 a call to 0x4100, before 0x4330 to
        // 0x4200, before 0x4440 to 0x4300; before 0x4900 a call to 0x4800.
        let calls: Vec<(u64, u64)> = vec![
            (0x4110, 0x4000),
            (0x4220, 0x4100),
            (0x4330, 0x4200),
            (0x4440, 0x4300),
            (0x4900, 0x4800),
        ];
        let code = move |a: u64| -> Option<[u8; 5]> {
            let (ret, t) = calls.iter().find(|(r, _)| r - 5 == a)?;
            let rel = (*t as i64 - *ret as i64) as i32;
            let r = rel.to_le_bytes();
            Some([0xe8, r[0], r[1], r[2], r[3]])
        };
        assert_eq!(
            unwind(sp, 0x4001, &mem, &text, &code),
            vec![0x4001, 0x4110, 0x4220, 0x4330, 0x4440]
        );
        // Without the call check the stale link would be taken.
        let none = |_: u64| None;
        assert_eq!(unwind(sp, 0x4001, &mem, &text, &none)[2], 0x4900);
        // No chain: the leaf only.
        let flat = vec![0u8; 64];
        assert_eq!(unwind(sp, 0x4001, &flat, &text, &none), vec![0x4001]);
    }
}

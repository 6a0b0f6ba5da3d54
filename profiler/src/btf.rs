//! Offsets of kernel struct members, read from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`), so the scheduler programs can read
//! `task_struct` fields without compile-time layout assumptions (aya's Rust
//! programs have no CO-RE relocations). Only the walk over type records is
//! needed, written here in a few lines; aya does not expose BTF type
//! queries.

/// Byte offset of `member` in `struct name`, `None` if absent.
pub fn member_offset(btf: &[u8], name: &str, member: &str) -> Option<u32> {
    let u16_at =
        |o: usize| -> Option<u16> { Some(u16::from_le_bytes(btf.get(o..o + 2)?.try_into().ok()?)) };
    let u32_at =
        |o: usize| -> Option<u32> { Some(u32::from_le_bytes(btf.get(o..o + 4)?.try_into().ok()?)) };
    if u16_at(0)? != 0xeb9f {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let type_off = u32_at(8)? as usize;
    let type_len = u32_at(12)? as usize;
    let str_off = u32_at(16)? as usize;
    let strings = hdr_len.checked_add(str_off)?;
    let string = |off: u32| -> Option<&[u8]> {
        let s = btf.get(strings.checked_add(off as usize)?..)?;
        Some(&s[..s.iter().position(|&c| c == 0)?])
    };
    let mut at = hdr_len.checked_add(type_off)?;
    let end = at.checked_add(type_len)?;
    while at + 12 <= end {
        let name_off = u32_at(at)?;
        let info = u32_at(at + 4)?;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let kflag = info >> 31 == 1;
        let body = at + 12;
        let extra = match kind {
            1 | 14 | 17 => 4,
            3 => 12,
            4 | 5 | 15 | 19 => 12 * vlen,
            6 | 13 => 8 * vlen,
            2 | 7..=12 | 16 | 18 => 0,
            _ => return None,
        };
        if kind == 4 && string(name_off)? == name.as_bytes() {
            for i in 0..vlen {
                let m = body + 12 * i;
                if string(u32_at(m)?)? == member.as_bytes() {
                    let off = u32_at(m + 8)?;
                    let bits = if kflag { off & 0x00ff_ffff } else { off };
                    return Some(bits / 8);
                }
            }
        }
        at = body + extra;
    }
    None
}

/// Offsets of `task_struct.pid` and `task_struct.tgid` on this kernel.
pub fn task_id_offsets() -> Result<(u32, u32), crate::error::Error> {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").map_err(|e| {
        crate::error::Error::KernelFeature(format!(
            "cannot read /sys/kernel/btf/vmlinux ({e}); profiler needs a kernel with BTF"
        ))
    })?;
    let member = |m: &str| {
        member_offset(&btf, "task_struct", m).ok_or_else(|| {
            crate::error::Error::KernelFeature(format!("this kernel's BTF has no task_struct.{m}"))
        })
    };
    Ok((member("pid")?, member("tgid")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_task_struct_pid_on_this_kernel() {
        let Ok(btf) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            panic!("this test needs /sys/kernel/btf/vmlinux (every supported kernel has it)");
        };
        let pid = member_offset(&btf, "task_struct", "pid").unwrap();
        let tgid = member_offset(&btf, "task_struct", "tgid").unwrap();
        assert_eq!(tgid, pid + 4, "pid and tgid are adjacent pid_t fields");
        assert!(pid > 64 && pid < 16384);
        assert_eq!(member_offset(&btf, "task_struct", "no_such_field"), None);
        assert_eq!(member_offset(&btf[..100], "task_struct", "pid"), None);
        assert_eq!(member_offset(b"garbage", "task_struct", "pid"), None);
    }
}

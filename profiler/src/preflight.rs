//! Checks before loading anything into the kernel, each failing with a
//! message that says what is missing and how to fix it: privileges
//! (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN), BTF, tracefs (mounted here
//! when absent), and the layout of every tracepoint the kernel programs
//! read (`profiler_common::tp`).

use std::{fs, path::Path};

use crate::error::Error;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask of this process.
fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The capabilities missing for loading tracing programs, by name.
pub fn missing_caps(caps: u64) -> Vec<&'static str> {
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    let mut v = Vec::new();
    if !has(CAP_BPF) {
        v.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        v.push("CAP_PERFMON");
    }
    v
}

pub fn check_privileges() -> Result<(), Error> {
    let missing = missing_caps(effective_caps());
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Privilege(format!(
        "missing {} (needed to load eBPF tracing programs); run as root, usually with `sudo profiler ...`",
        missing.join(" and ")
    )))
}

/// Where tracefs is mounted, mounting it at /sys/kernel/tracing if needed.
pub fn tracefs() -> Result<&'static Path, Error> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let p = Path::new(p);
        if p.join("events").is_dir() {
            return Ok(p);
        }
    }
    let p = Path::new("/sys/kernel/tracing");
    // SAFETY: plain mount(2) with static NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 && p.join("events").is_dir() {
        return Ok(p);
    }
    Err(Error::KernelFeature(format!(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({}); \
         run `mount -t tracefs nodev /sys/kernel/tracing`",
        std::io::Error::last_os_error()
    )))
}

/// One field line of a tracepoint `format` file.
fn field_of(format: &str, name: &str) -> Option<(usize, usize)> {
    format.lines().find_map(|l| {
        let l = l.trim();
        let decl = l.strip_prefix("field:")?.split(';').next()?;
        let ident = decl.rsplit(' ').next()?;
        let ident = ident.split('[').next()?;
        if ident != name {
            return None;
        }
        let num = |key: &str| -> Option<usize> {
            l.split(';')
                .find_map(|p| p.trim().strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
        };
        Some((num("offset:")?, num("size:")?))
    })
}

/// Checks every tracepoint field the kernel programs read against the
/// running kernel's format files.
pub fn check_tracepoints(tracefs: &Path) -> Result<(), Error> {
    for &(event, field, offset, size) in profiler_common::tp::CHECKED_FIELDS {
        let path = tracefs.join("events").join(event).join("format");
        let format = fs::read_to_string(&path).map_err(|e| {
            Error::KernelFeature(format!(
                "this kernel lacks tracepoint {event} ({}: {e})",
                path.display()
            ))
        })?;
        match field_of(&format, field) {
            Some((o, s)) if o == offset && s == size => {}
            Some((o, s)) => {
                return Err(Error::KernelFeature(format!(
                    "tracepoint {event} field {field} is at offset {o} size {s} on this kernel, \
                     profiler was built for offset {offset} size {size}"
                )));
            }
            None => {
                return Err(Error::KernelFeature(format!(
                    "tracepoint {event} has no field {field} on this kernel"
                )));
            }
        }
    }
    Ok(())
}

/// BTF is needed by `bpf_get_current_task_btf`.
pub fn check_btf() -> Result<(), Error> {
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        Ok(())
    } else {
        Err(Error::KernelFeature(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing); \
             profiler needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
                .into(),
        ))
    }
}

/// All checks, in the order a user would fix them.
pub fn check_all() -> Result<&'static Path, Error> {
    check_privileges()?;
    check_btf()?;
    let t = tracefs()?;
    check_tracepoints(t)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        assert_eq!(missing_caps(0), vec!["CAP_BPF", "CAP_PERFMON"]);
        assert!(missing_caps(1 << CAP_SYS_ADMIN).is_empty());
        assert!(missing_caps((1 << CAP_BPF) | (1 << CAP_PERFMON)).is_empty());
        assert_eq!(missing_caps(1 << CAP_BPF), vec!["CAP_PERFMON"]);
    }

    #[test]
    fn parses_format_fields() {
        let f = "name: sched_switch\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
                 \tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
                 \tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
                 \tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n";
        assert_eq!(field_of(f, "prev_pid"), Some((24, 4)));
        assert_eq!(field_of(f, "prev_comm"), Some((8, 16)));
        assert_eq!(field_of(f, "filename"), Some((8, 4)));
        assert_eq!(field_of(f, "next_pid"), None);
    }
}

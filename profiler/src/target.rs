//! What `/proc` says about the target: validation of the pid, identity
//! (comm, exe, cmdline, start time), and its threads with their scheduler
//! state and current syscall, used to seed the kernel side at attach.

use std::{fs, path::PathBuf};

use crate::error::Error;

/// `PF_KTHREAD` in `/proc/<pid>/stat` flags.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Fields of `/proc/<pid>/stat` (or `task/<tid>/stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub flags: u64,
    pub start_ticks: u64,
}

/// Parses a `stat` line. The comm is between the first `(` and the *last*
/// `)`: it may itself contain spaces and parentheses.
pub fn parse_stat(s: &str) -> Option<Stat> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state).
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// A validated target process.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub start_ticks: u64,
}

/// Checks that `pid` is a live user-space process other than us.
pub fn inspect(pid: i64) -> Result<Process, Error> {
    if pid <= 0 || pid > i64::from(i32::MAX) {
        return Err(Error::Usage(format!(
            "invalid --pid {pid}: must be a positive process id"
        )));
    }
    let pid = pid as u32;
    if pid == std::process::id() {
        return Err(Error::OwnPid(pid));
    }
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = fs::read_to_string(dir.join("stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .ok_or(Error::NoSuchPid(i64::from(pid)))?;
    // /proc/<tid> also exists for non-leader threads: insist on a process.
    let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<u32>().ok());
    if let Some(tgid) = tgid
        && tgid != pid
    {
        return Err(Error::Usage(format!(
            "pid {pid} is a thread of process {tgid}; use --pid {tgid}"
        )));
    }
    if stat.flags & PF_KTHREAD != 0 {
        return Err(Error::KernelThread {
            pid,
            comm: stat.comm,
        });
    }
    if stat.state == 'Z' || stat.state == 'X' {
        return Err(Error::Zombie {
            pid,
            comm: stat.comm,
        });
    }
    let exe = fs::read_link(dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmdline = fs::read(dir.join("cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Ok(Process {
        pid,
        comm: stat.comm,
        exe,
        cmdline,
        start_ticks: stat.start_ticks,
    })
}

/// The scheduler view of one thread at attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub tid: u32,
    pub comm: String,
    /// `R`, `S`, `D`, `T`, `t`, `Z`...
    pub state: char,
    /// The syscall it is in (from `/proc/<tid>/syscall`), if any.
    pub syscall: Option<u32>,
}

/// Parses `/proc/<tid>/syscall`: `running`, `-1 sp pc` (not in a
/// syscall), or `nr args... sp pc`.
pub fn parse_syscall_file(s: &str) -> Option<u32> {
    s.split_whitespace().next()?.parse::<u32>().ok()
}

/// Thread ids of `pid` (empty when it is gone).
pub fn tids(pid: u32) -> Vec<u32> {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut v: Vec<u32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// State of thread `tid` of `pid`, `None` when it is gone.
pub fn snapshot(pid: u32, tid: u32) -> Option<TaskSnapshot> {
    let dir = PathBuf::from(format!("/proc/{pid}/task/{tid}"));
    let stat = parse_stat(&fs::read_to_string(dir.join("stat")).ok()?)?;
    let syscall = if matches!(stat.state, 'S' | 'D') {
        fs::read_to_string(dir.join("syscall"))
            .ok()
            .and_then(|s| parse_syscall_file(&s))
    } else {
        None
    };
    Some(TaskSnapshot {
        tid,
        comm: stat.comm,
        state: stat.state,
        syscall,
    })
}

/// Whether process `pid` with start time `start_ticks` still exists (the
/// pid was not reused).
pub fn alive(pid: u32, start_ticks: u64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .is_some_and(|s| s.start_ticks == start_ticks && s.state != 'Z' && s.state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_and_spaces_in_comm() {
        let s = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 98765 1000 50";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.comm, "my (odd) app");
        assert_eq!(st.state, 'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.flags, 4194560);
        assert_eq!(st.start_ticks, 98765);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn syscall_file_forms() {
        assert_eq!(
            parse_syscall_file("0 0x3 0x7ffd 0x1 0 0 0 0x7ffd 0x7f12\n"),
            Some(0)
        );
        assert_eq!(parse_syscall_file("-1 0x7ffd 0x7f12\n"), None);
        assert_eq!(parse_syscall_file("running\n"), None);
    }

    #[test]
    fn rejects_bad_pids() {
        assert!(matches!(inspect(0), Err(Error::Usage(_))));
        assert!(matches!(inspect(-5), Err(Error::Usage(_))));
        assert!(matches!(
            inspect(i64::from(std::process::id())),
            Err(Error::OwnPid(_))
        ));
        assert!(matches!(
            inspect(i64::from(i32::MAX)),
            Err(Error::NoSuchPid(_))
        ));
        // kthreadd is pid 2 on every Linux system.
        if std::path::Path::new("/proc/2/stat").exists() {
            assert!(matches!(inspect(2), Err(Error::KernelThread { .. })));
        }
    }
}

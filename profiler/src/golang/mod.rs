//! Go runtime X-ray: reading Go binaries (build info, function table) and
//! naming the role of every OS thread of a Go process from its stacks.

pub mod binary;
pub mod pclntab;
pub mod roles;

use roles::GoFacts;

/// GOMAXPROCS of process `pid`: from its environment, else the default
/// the runtime picks (CPUs in its affinity mask).
pub fn gomaxprocs(pid: u32) -> (u32, String) {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    if let Some(n) = env
        .split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"GOMAXPROCS="))
        .filter_map(|v| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok())
        .find(|&n| n > 0)
    {
        return (n, "from the environment".into());
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let n = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|l| cpu_list_len(l.trim()))
        .unwrap_or(0);
    (n, "default: CPUs in its affinity mask".into())
}

/// Number of CPUs in a list like `0-3,8,10-11`.
pub fn cpu_list_len(s: &str) -> u32 {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => u32::from(p.parse::<u32>().is_ok()),
        })
        .sum()
}

/// What makes `pid` a Go process, `None` when it is not one.
pub fn probe(pid: u32) -> Option<GoFacts> {
    let exe = std::path::PathBuf::from(format!("/proc/{pid}/exe"));
    let bin = binary::GoBinary::open(&exe)?;
    let (gomaxprocs, source) = gomaxprocs(pid);
    let module_file = std::fs::read_link(&exe)
        .ok()
        .and_then(|p| {
            p.file_name().map(|n| {
                n.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string()
            })
        })
        .unwrap_or_default();
    let info = bin.info.clone().unwrap_or_default();
    Some(GoFacts {
        go_version: if info.go_version.is_empty() {
            "unknown Go version".into()
        } else {
            info.go_version
        },
        module: info.module,
        gomaxprocs,
        gomaxprocs_source: source,
        cgo: bin.dynamic,
        module_file,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::cpu_list_len("0-3,8,10-11"), 7);
        assert_eq!(super::cpu_list_len("0"), 1);
        assert_eq!(super::cpu_list_len(""), 0);
        assert_eq!(super::cpu_list_len("3-1,x"), 0);
    }
}

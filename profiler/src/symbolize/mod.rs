//! Addresses to function names. User addresses are resolved against the
//! mappings captured while the target lived ([`maps`]), as file offsets
//! into the mapped files, with blazesym (ELF symbol tables, DWARF where
//! present, Rust/C++ demangling, Go symbol tables); kernel addresses with
//! kallsyms. Frames that cannot be named keep their module and offset.
//!
//! The model asks through the [`Symbolize`] trait, so it is tested with a
//! fake and no process.

pub mod attach;
pub mod maps;

use std::collections::HashMap;

use blazesym::{
    MaybeDefault,
    symbolize::{Input, Symbolized, Symbolizer as Blaze, source},
};

use maps::Mapping;

use crate::golang::binary::GoBinary;

/// A resolved stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    /// Function name, demangled; `[unknown] module+0xoff` or `[unknown]`
    /// when it cannot be named.
    pub name: String,
    /// File name of the module (`libc.so.6`, `[kernel]`), empty if none.
    pub module: String,
    /// A kernel frame.
    pub kernel: bool,
}

/// Resolves stacks. Input and output are leaf-first; the first address is
/// exact, the others are return addresses.
pub trait Symbolize {
    fn user(&mut self, pid: u32, ips: &[u64]) -> Vec<Frame>;
    fn kernel(&mut self, ips: &[u64]) -> Vec<Frame>;
    /// Return addresses found in a copy of a user stack (see
    /// [`attach::unwind`]), leaf first; by default just the ip.
    fn unwind_snapshot(&mut self, _pid: u32, ip: u64, _sp: u64, _stack: &[u8]) -> Vec<u64> {
        vec![ip]
    }
}

/// Kernel frames that are the tracing machinery itself, trimmed from the
/// leaf end of kernel stacks.
fn is_tracing_frame(name: &str) -> bool {
    [
        "bpf_",
        "__bpf_",
        "perf_trace",
        "perf_tp_",
        "trace_call_bpf",
        "__traceiter",
        "bpf_trace_run",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Drops tracing frames (BPF, perf) from the leaf end of a kernel stack.
pub fn trim_tracing(frames: &mut Vec<Frame>) {
    let n = frames
        .iter()
        .take_while(|f| is_tracing_frame(&f.name))
        .count();
    frames.drain(..n);
}

/// blazesym-backed [`Symbolize`] over captured mappings.
pub struct Symbolizer {
    blaze: Blaze,
    /// Mappings per process, in capture order (later captures first
    /// searched, as they reflect the latest exec/dlopen).
    procs: HashMap<u32, Vec<Vec<Mapping>>>,
    cache: HashMap<(u32, u64), Frame>,
    /// Last maps text seen per process, to skip unchanged captures.
    last: HashMap<u32, u64>,
    /// Go function tables of modules blazesym could not name (stripped Go
    /// binaries), by path; `None` when the module is not Go.
    go: HashMap<std::path::PathBuf, Option<std::sync::Arc<GoBinary>>>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    pub fn new() -> Self {
        Symbolizer {
            blaze: Blaze::builder()
                .enable_code_info(false)
                .enable_inlined_fns(false)
                .build(),
            procs: HashMap::new(),
            cache: HashMap::new(),
            last: HashMap::new(),
            go: HashMap::new(),
        }
    }

    /// Captures the mappings of `pid` now (call at attach, after exec, and
    /// at stop while the target lives). Returns how many were found.
    pub fn capture(&mut self, pid: u32) -> usize {
        use std::hash::{Hash, Hasher};
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return 0;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        let h = h.finish();
        if self.last.get(&pid) == Some(&h) {
            return 0;
        }
        let m = maps::capture_from(pid, &text);
        let n = m.len();
        if n > 0 {
            self.last.insert(pid, h);
            self.procs.entry(pid).or_default().push(m);
        }
        n
    }

    /// The latest captured mappings of `pid`.
    pub fn mappings(&self, pid: u32) -> &[Mapping] {
        self.procs
            .get(&pid)
            .and_then(|v| v.last())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether mappings of `pid` were captured.
    pub fn knows(&self, pid: u32) -> bool {
        self.procs.contains_key(&pid)
    }

    fn mapping(&self, pid: u32, ip: u64) -> Option<&Mapping> {
        self.procs
            .get(&pid)?
            .iter()
            .rev()
            .find_map(|snap| snap.iter().find(|m| ip >= m.start && ip < m.end))
    }
}

fn unknown(module: &str, offset: u64) -> Frame {
    Frame {
        name: format!("[unknown] {module}+0x{offset:x}"),
        module: module.to_string(),
        kernel: false,
    }
}

impl Symbolize for Symbolizer {
    fn user(&mut self, pid: u32, ips: &[u64]) -> Vec<Frame> {
        // Lookup addresses: return addresses point after the call.
        let lookups: Vec<u64> = ips
            .iter()
            .enumerate()
            .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
            .collect();
        // Group the uncached ones by mapping file.
        let mut groups: HashMap<std::path::PathBuf, (String, Vec<(u64, u64)>)> = HashMap::new();
        let mut unnamed: Vec<(u64, Frame)> = Vec::new();
        for &ip in &lookups {
            if self.cache.contains_key(&(pid, ip)) {
                continue;
            }
            match self.mapping(pid, ip) {
                None => unnamed.push((
                    ip,
                    Frame {
                        name: "[unknown]".into(),
                        module: String::new(),
                        kernel: false,
                    },
                )),
                Some(m) => {
                    let off = ip - m.start + m.offset;
                    match m.open_path() {
                        Some(p) => groups
                            .entry(p)
                            .or_insert_with(|| (m.module().to_string(), Vec::new()))
                            .1
                            .push((ip, off)),
                        None => unnamed.push((ip, unknown(m.module(), off))),
                    }
                }
            }
        }
        for (ip, f) in unnamed {
            self.cache.insert((pid, ip), f);
        }
        for (path, (module, addrs)) in groups {
            let offsets: Vec<u64> = addrs.iter().map(|&(_, o)| o).collect();
            let src = source::Source::Elf(source::Elf::new(path.clone()));
            let syms = self
                .blaze
                .symbolize(&src, Input::FileOffset(&offsets))
                .unwrap_or_default();
            for (i, &(ip, off)) in addrs.iter().enumerate() {
                let f = match syms.get(i) {
                    Some(Symbolized::Sym(s)) => Frame {
                        name: s.name.to_string(),
                        module: module.clone(),
                        kernel: false,
                    },
                    _ => {
                        // Stripped Go binaries keep their function table.
                        let go = self
                            .go
                            .entry(path.clone())
                            .or_insert_with(|| GoBinary::open(&path).map(std::sync::Arc::new));
                        match go.as_ref().and_then(|g| g.function_at(off)) {
                            Some(name) => Frame {
                                name: name.to_string(),
                                module: module.clone(),
                                kernel: false,
                            },
                            None => unknown(&module, off),
                        }
                    }
                };
                self.cache.insert((pid, ip), f);
            }
        }
        lookups
            .iter()
            .map(|ip| {
                self.cache
                    .get(&(pid, *ip))
                    .cloned()
                    .unwrap_or_else(|| unknown("", *ip))
            })
            .collect()
    }

    fn unwind_snapshot(&mut self, pid: u32, ip: u64, sp: u64, stack: &[u8]) -> Vec<u64> {
        let maps: Vec<Mapping> = self.procs.get(&pid).map(|v| v.concat()).unwrap_or_default();
        let is_text = |a: u64| maps.iter().any(|m| a >= m.start && a < m.end);
        // Code bytes from the mapped files (kept open), so the call check
        // works after the process has exited.
        let code = |a: u64| -> Option<[u8; 5]> {
            use std::os::unix::fs::FileExt;
            let m = maps.iter().find(|m| a >= m.start && a + 5 <= m.end)?;
            let mut b = [0u8; 5];
            let f = m.file.as_ref()?;
            (f.read_at(&mut b, a - m.start + m.offset).ok()? == 5).then_some(b)
        };
        attach::unwind(sp, ip, stack, &is_text, &code)
    }

    fn kernel(&mut self, ips: &[u64]) -> Vec<Frame> {
        const KERNEL_PID: u32 = u32::MAX;
        let lookups: Vec<u64> = ips
            .iter()
            .enumerate()
            .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
            .collect();
        let todo: Vec<u64> = lookups
            .iter()
            .copied()
            .filter(|ip| !self.cache.contains_key(&(KERNEL_PID, *ip)))
            .collect();
        if !todo.is_empty() {
            let src = source::Source::Kernel(source::Kernel {
                vmlinux: MaybeDefault::None,
                ..source::Kernel::default()
            });
            let syms = self
                .blaze
                .symbolize(&src, Input::AbsAddr(&todo))
                .unwrap_or_default();
            for (i, &ip) in todo.iter().enumerate() {
                let f = match syms.get(i) {
                    Some(Symbolized::Sym(s)) => Frame {
                        name: s.name.to_string(),
                        module: s
                            .module
                            .as_ref()
                            .map(|m| m.to_string_lossy().into_owned())
                            .filter(|m| !m.is_empty())
                            .unwrap_or_else(|| "[kernel]".into()),
                        kernel: true,
                    },
                    _ => Frame {
                        name: "[unknown kernel]".into(),
                        module: "[kernel]".into(),
                        kernel: true,
                    },
                };
                self.cache.insert((KERNEL_PID, ip), f);
            }
        }
        let mut frames: Vec<Frame> = lookups
            .iter()
            .filter_map(|ip| self.cache.get(&(KERNEL_PID, *ip)).cloned())
            .collect();
        trim_tracing(&mut frames);
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_function_with_a_distinct_name() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn names_a_function_of_this_test_binary_by_file_offset() {
        let mut s = Symbolizer::new();
        assert!(s.capture(std::process::id()) > 0);
        let ip = a_function_with_a_distinct_name as *const () as u64;
        let f = s.user(std::process::id(), &[ip + 1]);
        assert!(
            f[0].name.contains("a_function_with_a_distinct_name"),
            "{f:?}"
        );
        assert!(!f[0].kernel);
        // An address in no mapping.
        let f = s.user(std::process::id(), &[0x10]);
        assert_eq!(f[0].name, "[unknown]");
    }

    #[test]
    fn trims_tracing_frames_at_the_leaf() {
        let fr = |n: &str| Frame {
            name: n.into(),
            module: "[kernel]".into(),
            kernel: true,
        };
        let mut v = vec![
            fr("bpf_prog_123"),
            fr("perf_trace_sched_switch"),
            fr("__schedule"),
            fr("schedule"),
        ];
        trim_tracing(&mut v);
        assert_eq!(v, vec![fr("__schedule"), fr("schedule")]);
    }
}

#[cfg(test)]
mod malformed {
    //! ELF files come from the target and may be broken or hostile: a
    //! corrupt binary must give `[unknown]` frames, never a crash or hang.
    use super::*;

    #[test]
    fn corrupt_binaries_give_unknown_frames() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let dir = std::env::temp_dir().join(format!("profiler-badelf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("truncated-header", exe[..40].to_vec()),
            ("truncated-half", exe[..exe.len() / 2].to_vec()),
            (
                "garbage",
                (0..65536u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect(),
            ),
        ];
        // Section header table offset and count smashed.
        let mut smashed = exe.clone();
        smashed[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        smashed[0x3c..0x3e].copy_from_slice(&0xffffu16.to_le_bytes());
        cases.push(("smashed-shdrs", smashed));
        let mut s = Symbolizer::new();
        for (i, (name, bytes)) in cases.iter().enumerate() {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let md = std::fs::metadata(&path).unwrap();
            use std::os::unix::fs::MetadataExt;
            let pid = 1_000_000 + i as u32;
            s.procs.insert(
                pid,
                vec![vec![Mapping {
                    start: 0x1000,
                    end: 0x100_0000,
                    offset: 0,
                    dev: (libc::major(md.dev()), libc::minor(md.dev())),
                    inode: md.ino(),
                    path: path.to_string_lossy().into_owned(),
                    file: None,
                    stamp: Some((md.size(), md.mtime())),
                }]],
            );
            let t = std::time::Instant::now();
            let frames = s.user(pid, &[0x2000, 0x3000]);
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "{name}: too slow"
            );
            assert_eq!(frames.len(), 2);
            assert!(
                frames.iter().all(|f| f.name.starts_with("[unknown]")),
                "{name}: {frames:?}"
            );
            assert!(GoBinary::parse(bytes).is_none(), "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

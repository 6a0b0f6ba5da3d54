//! The executable mappings of a process, captured while it lives, with an
//! open handle on each mapped file (through `/proc/<pid>/map_files`, which
//! reaches the very inode mapped even when the file was since deleted or
//! replaced), so a target that exits before the report, or a binary
//! rebuilt meanwhile, still symbolizes right.

use std::{
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

/// One executable mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// (major, minor) of the file's device and its inode, from the maps line.
    pub dev: (u32, u32),
    pub inode: u64,
    /// Path as `/proc/<pid>/maps` shows it (may end in ` (deleted)`).
    pub path: String,
    /// The mapped file itself, when it could be opened.
    pub file: Option<Arc<File>>,
    /// (size, mtime) of the file at `path` at capture, when it was the
    /// mapped inode then: a later check by path also compares these, as an
    /// inode number can be reused once the old file is gone.
    pub stamp: Option<(u64, i64)>,
}

impl Mapping {
    /// The file name without directories (`libc.so.6`).
    pub fn module(&self) -> &str {
        let p = self.path.trim_end_matches(" (deleted)");
        p.rsplit('/').next().unwrap_or(p)
    }

    /// A path that opens the mapped inode: the kept handle when we have
    /// one, else the original path if it still names the same inode.
    pub fn open_path(&self) -> Option<PathBuf> {
        if let Some(f) = &self.file {
            use std::os::fd::AsRawFd;
            return Some(PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())));
        }
        let md = std::fs::metadata(&self.path).ok()?;
        let dev = (libc::major(md.dev()), libc::minor(md.dev()));
        let same = dev == self.dev
            && md.ino() == self.inode
            && self.stamp == Some((md.size(), md.mtime()));
        same.then(|| PathBuf::from(&self.path))
    }
}

/// Parses one `/proc/<pid>/maps` line; `None` for lines that are not
/// executable file mappings.
pub fn parse_line(line: &str) -> Option<Mapping> {
    let mut it = line.splitn(6, char::is_whitespace);
    let range = it.next()?;
    let perms = it.next()?;
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let dev = it.next()?;
    let inode: u64 = it.next()?.parse().ok()?;
    let path = it.next().unwrap_or("").trim().to_string();
    if !perms.contains('x') || inode == 0 || !path.starts_with('/') {
        return None;
    }
    let (s, e) = range.split_once('-')?;
    let (maj, min) = dev.split_once(':')?;
    Some(Mapping {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        offset,
        dev: (
            u32::from_str_radix(maj, 16).ok()?,
            u32::from_str_radix(min, 16).ok()?,
        ),
        inode,
        path,
        file: None,
        stamp: None,
    })
}

/// The executable file mappings of `pid` now, with handles opened. Empty
/// when the process is gone.
pub fn capture(pid: u32) -> Vec<Mapping> {
    match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(text) => capture_from(pid, &text),
        Err(_) => Vec::new(),
    }
}

/// Like [`capture`], from maps text already read.
pub fn capture_from(pid: u32, text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = text.lines().filter_map(parse_line).collect();
    let mut opened: Vec<((u32, u32), u64, Arc<File>)> = Vec::new();
    for m in &mut out {
        if let Ok(md) = std::fs::metadata(&m.path)
            && (libc::major(md.dev()), libc::minor(md.dev())) == m.dev
            && md.ino() == m.inode
        {
            m.stamp = Some((md.size(), md.mtime()));
        }
        if let Some((_, _, f)) = opened.iter().find(|(d, i, _)| *d == m.dev && *i == m.inode) {
            m.file = Some(f.clone());
            continue;
        }
        let mf = Path::new("/proc")
            .join(pid.to_string())
            .join("map_files")
            .join(format!("{:x}-{:x}", m.start, m.end));
        if let Ok(f) = File::open(&mf) {
            let f = Arc::new(f);
            opened.push((m.dev, m.inode, f.clone()));
            m.file = Some(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_file_mappings_only() {
        let m = parse_line("7f1c2a428000-7f1c2a5bd000 r-xp 00028000 fd:01 1835051                    /usr/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        assert_eq!(
            (m.start, m.end, m.offset),
            (0x7f1c2a428000, 0x7f1c2a5bd000, 0x28000)
        );
        assert_eq!(m.dev, (0xfd, 1));
        assert_eq!(m.inode, 1835051);
        assert_eq!(m.module(), "libc.so.6");
        let d = parse_line("55d0c3a00000-55d0c3a80000 r-xp 00001000 08:02 99 /opt/app (deleted)")
            .unwrap();
        assert_eq!(d.module(), "app");
        assert!(
            parse_line("7f1c2a400000-7f1c2a428000 r--p 00000000 fd:01 1835051 /usr/lib/libc.so.6")
                .is_none()
        );
        assert!(parse_line("7ffd5e1f0000-7ffd5e1f2000 r-xp 00000000 00:00 0 [vdso]").is_none());
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn captures_own_mappings_with_handles() {
        let maps = capture(std::process::id());
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let me = maps
            .iter()
            .find(|m| Path::new(&m.path) == exe)
            .expect("own executable mapped");
        assert!(me.open_path().is_some());
    }

    #[test]
    fn a_replaced_file_without_a_handle_is_not_opened() {
        let dir = std::env::temp_dir().join(format!("profiler-maps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("lib.so");
        std::fs::write(&p, b"old").unwrap();
        let md = std::fs::metadata(&p).unwrap();
        let mut m = Mapping {
            start: 0x1000,
            end: 0x2000,
            offset: 0,
            dev: (libc::major(md.dev()), libc::minor(md.dev())),
            inode: md.ino(),
            path: p.to_string_lossy().into_owned(),
            file: None,
            stamp: Some((md.size(), md.mtime())),
        };
        assert_eq!(m.open_path(), Some(p.clone()), "same inode: opened by path");
        // Replace it: a new inode at the same path (the old one stays
        // alive, as a mapped file does).
        let _keep = std::fs::File::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"new binary").unwrap();
        assert_eq!(m.open_path(), None, "replaced file must not be used");
        m.path.push_str(" (deleted)");
        assert_eq!(m.module(), "lib.so");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

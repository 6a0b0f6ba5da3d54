//! What a Go binary says about itself: the build info (`.go.buildinfo`:
//! Go version, module path, build settings such as CGO_ENABLED) and its
//! function table (`.gopclntab`), plus whether it links C code (cgo: a
//! dynamically linked Go binary). Read with the `object` crate; a corrupt
//! file gives `None`, never a panic.

use object::{Object, ObjectSection, ObjectSegment};

use super::pclntab::Pclntab;

/// Build information of a Go binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// `go1.19.8`.
    pub go_version: String,
    /// Main module path (`mod` line), or the main package path.
    pub module: String,
    /// `build` settings (`CGO_ENABLED=1`, `-ldflags=...`).
    pub settings: Vec<(String, String)>,
}

/// A Go binary, parsed.
#[derive(Debug)]
pub struct GoBinary {
    pub info: Option<BuildInfo>,
    pub pclntab: Option<Pclntab>,
    /// Dynamically linked (has an ELF interpreter): runs C code through cgo.
    pub dynamic: bool,
    /// (file offset, vaddr, size) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
}

const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Reads a uvarint-prefixed string at `*pos`.
fn varint_str(b: &[u8], pos: &mut usize) -> Option<String> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    let s = b.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(String::from_utf8_lossy(s).into_owned())
}

/// Parses `.go.buildinfo` in the Go 1.18+ inline-string format.
pub fn parse_buildinfo(b: &[u8]) -> Option<BuildInfo> {
    if !b.starts_with(BUILDINFO_MAGIC) {
        return None;
    }
    let flags = *b.get(15)?;
    if flags & 0x2 == 0 {
        // Pre-1.18 pointer format: versions older than we support.
        return None;
    }
    let mut pos = 32;
    let go_version = varint_str(b, &mut pos)?;
    let modinfo = varint_str(b, &mut pos).unwrap_or_default();
    let mut info = BuildInfo {
        go_version,
        ..BuildInfo::default()
    };
    let mut path = String::new();
    for line in modinfo.lines() {
        let mut f = line.split('\t');
        match (f.next(), f.next()) {
            (Some("path"), Some(p)) => path = p.to_string(),
            (Some("mod"), Some(m)) => info.module = m.to_string(),
            (Some("build"), Some(kv)) => {
                if let Some((k, v)) = kv.split_once('=') {
                    info.settings.push((k.to_string(), v.to_string()));
                }
            }
            _ => {}
        }
    }
    if info.module.is_empty() {
        info.module = path;
    }
    Some(info)
}

impl BuildInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl GoBinary {
    /// Parses `data` as an ELF file; `None` when it is not a Go binary.
    pub fn parse(data: &[u8]) -> Option<GoBinary> {
        Self::parse_from(data)
    }

    /// Parses from any `object` reader (a byte slice, or a file read on
    /// demand so that big non-Go binaries are not read whole).
    fn parse_from<'d, R: object::ReadRef<'d>>(data: R) -> Option<GoBinary> {
        let file = object::File::parse(data).ok()?;
        let section = |name: &str| file.section_by_name(name).and_then(|s| s.data().ok());
        let info = section(".go.buildinfo").and_then(parse_buildinfo);
        let pclntab = section(".gopclntab").and_then(Pclntab::parse);
        if info.is_none() && pclntab.is_none() {
            return None;
        }
        let dynamic = match &file {
            object::File::Elf64(e) => e
                .elf_program_headers()
                .iter()
                .any(|ph| ph.p_type.get(e.endian()) == object::elf::PT_INTERP),
            object::File::Elf32(e) => e
                .elf_program_headers()
                .iter()
                .any(|ph| ph.p_type.get(e.endian()) == object::elf::PT_INTERP),
            _ => false,
        };
        let segments = file
            .segments()
            .map(|s| (s.file_range().0, s.address(), s.file_range().1))
            .collect();
        Some(GoBinary {
            info,
            pclntab,
            dynamic,
            segments,
        })
    }

    /// Reads and parses the file at `path`.
    pub fn open(path: &std::path::Path) -> Option<GoBinary> {
        let file = std::fs::File::open(path).ok()?;
        let cache = object::ReadCache::new(file);
        GoBinary::parse_from(&cache)
    }

    /// The virtual address of file offset `off`.
    pub fn vaddr(&self, off: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|&&(o, _, n)| off >= o && off < o + n)
            .map(|&(o, v, _)| off - o + v)
    }

    /// The function at file offset `off`, from the function table.
    pub fn function_at(&self, off: u64) -> Option<&str> {
        self.pclntab.as_ref()?.lookup(self.vaddr(off)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buildinfo(version: &str, modinfo: &str) -> Vec<u8> {
        let mut b = BUILDINFO_MAGIC.to_vec();
        b.push(8); // pointer size
        b.push(0x2); // flags: inline strings
        b.resize(32, 0);
        for s in [version, modinfo] {
            let mut n = s.len();
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    b.push(byte);
                    break;
                }
                b.push(byte | 0x80);
            }
            b.extend_from_slice(s.as_bytes());
        }
        b
    }

    #[test]
    fn parses_version_module_and_settings() {
        let modinfo = "0w\u{af}\u{c}\u{92}t\u{8}\u{2}A\u{e1}\u{c1}\u{7}\u{e6}\u{d6}\u{18}\u{e6}path\texample.com/app/cmd/app\nmod\texample.com/app\t(devel)\t\nbuild\t-compiler=gc\nbuild\tCGO_ENABLED=1\n";
        let long = "x".repeat(300);
        let i = parse_buildinfo(&buildinfo("go1.19.8", modinfo)).unwrap();
        assert_eq!(i.go_version, "go1.19.8");
        assert_eq!(i.module, "example.com/app");
        assert_eq!(i.setting("CGO_ENABLED"), Some("1"));
        let i = parse_buildinfo(&buildinfo(&long, "path\tcommand-line-arguments\n")).unwrap();
        assert_eq!(i.module, "command-line-arguments");
        assert!(parse_buildinfo(b"garbage").is_none());
        let b = buildinfo("go1.21.0", "");
        for cut in 0..b.len() {
            let _ = parse_buildinfo(&b[..cut]);
        }
    }

    #[test]
    fn not_a_go_binary() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        assert!(GoBinary::parse(&exe).is_none());
        assert!(GoBinary::parse(b"\x7fELF garbage").is_none());
    }
}

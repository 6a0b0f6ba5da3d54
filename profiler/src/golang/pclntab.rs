//! Go's function table (`.gopclntab`), which every Go binary keeps, even
//! stripped with `-ldflags="-s -w"`: enough to name the function at any
//! program counter. Written here because no maintained crate reads it
//! (blazesym reads ELF symbol tables and DWARF, which stripped Go binaries
//! lack).
//!
//! Layouts supported: Go 1.16-1.17 (magic 0xfffffffa), 1.18-1.19
//! (0xfffffff0) and 1.20+ (0xfffffff1). Every read is bounds-checked: a
//! corrupt table gives `None`, never a panic.

/// A parsed function table.
#[derive(Debug, Clone)]
pub struct Pclntab {
    /// (entry pc, name), sorted by entry.
    funcs: Vec<(u64, String)>,
    /// End of the last function.
    end: u64,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn uptr_at(b: &[u8], off: usize, ptr: usize) -> Option<u64> {
    match ptr {
        8 => Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?)),
        4 => u32_at(b, off).map(u64::from),
        _ => None,
    }
}

fn cstr_at(b: &[u8], off: usize) -> Option<String> {
    let s = b.get(off..)?;
    let end = s.iter().take(4096).position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// Most functions we accept (a sanity bound against corrupt headers).
const MAX_FUNCS: u64 = 4_000_000;

impl Pclntab {
    /// Parses the contents of a `.gopclntab` section.
    pub fn parse(b: &[u8]) -> Option<Pclntab> {
        let magic = u32_at(b, 0)?;
        let ptr = *b.get(7)? as usize;
        if b.get(4..6)? != [0, 0] || !(ptr == 4 || ptr == 8) {
            return None;
        }
        let word = |i: usize| uptr_at(b, 8 + i * ptr, ptr);
        let nfunc = word(0)?;
        if nfunc == 0 || nfunc > MAX_FUNCS {
            return None;
        }
        let mut funcs = Vec::with_capacity(nfunc as usize);
        let end = match magic {
            // 1.18+: nfunc, nfiles, textStart, funcname, cu, filetab, pctab, pcln
            0xffff_fff0 | 0xffff_fff1 => {
                let text = word(2)?;
                let funcname = usize::try_from(word(3)?).ok()?;
                let pcln = usize::try_from(word(7)?).ok()?;
                let entry = |i: u64| -> Option<(u64, usize)> {
                    let at = pcln.checked_add(usize::try_from(i).ok()?.checked_mul(8)?)?;
                    Some((u64::from(u32_at(b, at)?), u32_at(b, at + 4)? as usize))
                };
                for i in 0..nfunc {
                    let (entryoff, funcoff) = entry(i)?;
                    let f = pcln.checked_add(funcoff)?;
                    let nameoff = u32_at(b, f + 4)? as usize;
                    let name = cstr_at(b, funcname.checked_add(nameoff)?)?;
                    funcs.push((text + entryoff, name));
                }
                text + entry(nfunc)?.0
            }
            // 1.16-1.17: nfunc, nfiles, funcname, cu, filetab, pctab, pcln
            0xffff_fffa => {
                let funcname = usize::try_from(word(2)?).ok()?;
                let pcln = usize::try_from(word(6)?).ok()?;
                let entry = |i: u64| -> Option<(u64, usize)> {
                    let at = pcln.checked_add(usize::try_from(i).ok()?.checked_mul(2 * ptr)?)?;
                    Some((
                        uptr_at(b, at, ptr)?,
                        usize::try_from(uptr_at(b, at + ptr, ptr)?).ok()?,
                    ))
                };
                for i in 0..nfunc {
                    let (pc, funcoff) = entry(i)?;
                    let f = pcln.checked_add(funcoff)?;
                    let nameoff = u32_at(b, f + ptr)? as usize;
                    let name = cstr_at(b, funcname.checked_add(nameoff)?)?;
                    funcs.push((pc, name));
                }
                entry(nfunc)?.0
            }
            _ => return None,
        };
        funcs.sort_by_key(|f| f.0);
        Some(Pclntab { funcs, end })
    }

    /// The function containing virtual address `pc`.
    pub fn lookup(&self, pc: u64) -> Option<&str> {
        if pc >= self.end {
            return None;
        }
        let i = self.funcs.partition_point(|f| f.0 <= pc).checked_sub(1)?;
        Some(self.funcs[i].1.as_str())
    }

    pub fn len(&self) -> usize {
        self.funcs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.funcs.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Go 1.18+ table with functions at text+0x0, +0x100, +0x250,
    /// ending at +0x300.
    pub(crate) fn table_118(text: u64) -> Vec<u8> {
        let names = b"main.main\0runtime.sysmon\0main.worker\0";
        let mut b = Vec::new();
        b.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
        b.extend_from_slice(&[0, 0, 1, 8]);
        let header_len = 8 + 8 * 8;
        let funcname = header_len;
        let pcln = funcname + names.len();
        for w in [3u64, 0, text, funcname as u64, 0, 0, 0, pcln as u64] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(names);
        let functab_len = 4 * 8;
        let entries = [(0u32, 0u32), (0x100, 10), (0x250, 25)];
        for (i, (entry, _)) in entries.iter().enumerate() {
            b.extend_from_slice(&entry.to_le_bytes());
            b.extend_from_slice(&((functab_len + i * 8) as u32).to_le_bytes());
        }
        b.extend_from_slice(&0x300u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for (entry, nameoff) in entries {
            b.extend_from_slice(&entry.to_le_bytes());
            b.extend_from_slice(&nameoff.to_le_bytes());
        }
        b
    }

    #[test]
    fn names_functions_of_a_118_table() {
        let t = Pclntab::parse(&table_118(0x401000)).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(0x401000), Some("main.main"));
        assert_eq!(t.lookup(0x4010ff), Some("main.main"));
        assert_eq!(t.lookup(0x401100), Some("runtime.sysmon"));
        assert_eq!(t.lookup(0x4012ff), Some("main.worker"));
        assert_eq!(t.lookup(0x401300), None);
        assert_eq!(t.lookup(0x400000), None);
    }

    #[test]
    fn corrupt_tables_are_rejected_without_panic() {
        let good = table_118(0x401000);
        assert!(Pclntab::parse(&[]).is_none());
        assert!(Pclntab::parse(&good[..20]).is_none());
        for cut in 0..good.len() {
            let _ = Pclntab::parse(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // nfunc
        assert!(Pclntab::parse(&bad).is_none());
        let mut bad = good.clone();
        bad[0] = 0xfb; // Go 1.2 magic: unsupported
        assert!(Pclntab::parse(&bad).is_none());
        // Flip every byte once: never a panic.
        for i in 0..good.len() {
            let mut m = good.clone();
            m[i] ^= 0xff;
            let _ = Pclntab::parse(&m);
        }
    }
}

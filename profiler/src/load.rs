//! Reading saved profiles, for `report` and `diff`: every way a file can
//! be wrong (missing, empty, too big, not JSON, truncated, another tool's
//! JSON, a format version we do not read) gets its own clear message.
//! Memory is bounded: files over [`MAX_BYTES`] are refused before parsing,
//! and serde_json's recursion limit stops deeply nested input.

use std::path::{Path, PathBuf};

use crate::profile::{FORMAT, Profile};

/// Largest profile read (1 GiB).
pub const MAX_BYTES: u64 = 1 << 30;

/// Why a profile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: is empty")]
    Empty { path: PathBuf },
    #[error("{path}: is {size} bytes, more than the 1 GiB a profile may be")]
    TooBig { path: PathBuf, size: u64 },
    #[error("{path}: is not JSON ({detail})")]
    NotJson { path: PathBuf, detail: String },
    #[error("{path}: is truncated ({detail})")]
    Truncated { path: PathBuf, detail: String },
    #[error("{path}: is not a profiler profile (no \"format\": \"profiler/N\" key)")]
    Foreign { path: PathBuf },
    #[error(
        "{path}: is format {found}, newer than this profiler reads ({FORMAT}); upgrade profiler"
    )]
    Newer { path: PathBuf, found: String },
    #[error("{path}: is format {found}, which this profiler does not read (it reads {FORMAT})")]
    Unsupported { path: PathBuf, found: String },
    #[error("{path}: is a {FORMAT} profile with invalid content ({detail})")]
    Invalid { path: PathBuf, detail: String },
}

/// Parses profile text; `path` only names the source in errors.
pub fn parse(path: &Path, text: &[u8]) -> Result<Profile, LoadError> {
    let p = || path.to_path_buf();
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(LoadError::Empty { path: p() });
    }
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
        if e.is_eof() {
            LoadError::Truncated {
                path: p(),
                detail: e.to_string(),
            }
        } else {
            LoadError::NotJson {
                path: p(),
                detail: e.to_string(),
            }
        }
    })?;
    let format = value
        .get("format")
        .and_then(|f| f.as_str())
        .filter(|f| f.starts_with("profiler/"))
        .ok_or_else(|| LoadError::Foreign { path: p() })?
        .to_string();
    if format != FORMAT {
        let major = format
            .strip_prefix("profiler/")
            .and_then(|v| v.parse::<u32>().ok());
        return Err(match major {
            Some(m) if m > 1 => LoadError::Newer {
                path: p(),
                found: format,
            },
            _ => LoadError::Unsupported {
                path: p(),
                found: format,
            },
        });
    }
    let profile: Profile = serde_json::from_value(value).map_err(|e| LoadError::Invalid {
        path: p(),
        detail: e.to_string(),
    })?;
    validate(&profile).map_err(|detail| LoadError::Invalid { path: p(), detail })?;
    Ok(profile)
}

/// Internal consistency a renderer relies on: indices in range.
fn validate(p: &Profile) -> Result<(), String> {
    let nstacks = p.stacks.len() as u64;
    let nframes = p.frames.len() as u64;
    if let Some(s) = p
        .stacks
        .iter()
        .flatten()
        .find(|&&f| u64::from(f) >= nframes)
    {
        return Err(format!(
            "a stack refers to frame {s}, but there are {nframes} frames"
        ));
    }
    let bad_stack = |s: u32| u64::from(s) >= nstacks;
    if p.oncpu.iter().any(|s| bad_stack(s.stack))
        || p.offcpu.iter().any(|s| bad_stack(s.stack))
        || p.threads
            .iter()
            .filter_map(|t| t.creation_stack)
            .any(bad_stack)
    {
        return Err(format!(
            "a sample refers to a stack past the {nstacks} stacks"
        ));
    }
    Ok(())
}

/// Reads and parses the profile at `path`.
pub fn load(path: &Path) -> Result<Profile, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_BYTES {
        return Err(LoadError::TooBig {
            path: path.to_path_buf(),
            size,
        });
    }
    let text = std::fs::read(path).map_err(io)?;
    parse(path, &text)
}

/// Profiles named by `inputs`: files, or directories searched (not
/// recursively, plus one level of subdirectories) for `*.json` files.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for i in inputs {
        if i.is_dir() {
            let mut found = Vec::new();
            let rd = std::fs::read_dir(i).map_err(|source| LoadError::Io {
                path: i.clone(),
                source,
            })?;
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    let pj = p.join("profile.json");
                    if pj.is_file() {
                        found.push(pj);
                    }
                } else if p.extension().is_some_and(|x| x == "json") {
                    found.push(p);
                }
            }
            if found.is_empty() {
                return Err(LoadError::Io {
                    path: i.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "directory holds no *.json profile",
                    ),
                });
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(i.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("p.json"), text.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_kind_of_bad_input_has_its_message() {
        assert!(err("").contains("is empty"));
        assert!(err("  \n").contains("is empty"));
        assert!(err("{\"format\": \"profiler/1\", \"threads\": [").contains("truncated"));
        assert!(err("hello").contains("not JSON"));
        assert!(err("{\"traceEvents\": []}").contains("not a profiler profile"));
        assert!(err("[1,2,3]").contains("not a profiler profile"));
        assert!(
            err("{\"format\": \"profiler/2\"}")
                .contains("newer than this profiler reads (profiler/1)")
        );
        assert!(err("{\"format\": \"profiler/0\"}").contains("does not read"));
        assert!(err("{\"format\": \"profiler/1\", \"threads\": 5}").contains("invalid content"));
        let deep = format!(
            "{{\"format\": \"profiler/1\", \"x\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(err(&deep).contains("not JSON"), "recursion limit");
        assert!(err("{\"format\": \"profiler/1\", \"tool\": {\"name\": \"p\", \"version\": \"1\"}, \"target\": {\"pid\": 99999999999, \"comm\": \"a\", \"exe\": \"\"}}").contains("invalid content"));
    }
}

#[cfg(test)]
mod fuzz {
    //! The reader against hostile input: the corpus of cases found so far
    //! (`tests/corpus/`), and seeded random mutations of a valid profile.
    //! Every input must give `Ok` or a clean `Err`, never a panic.
    use super::*;

    fn valid() -> Vec<u8> {
        let d = crate::diff::tests::mk(100, 400, 2);
        serde_json::to_vec(&d).unwrap()
    }

    #[test]
    fn corpus_cases_fail_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let r = load(&e.path());
            assert!(r.is_err(), "{} should be rejected", e.path().display());
            n += 1;
        }
        assert!(n >= 8, "corpus has {n} cases");
        assert!(parse(Path::new("ok"), &valid()).is_ok());
    }

    #[test]
    fn random_mutations_never_panic() {
        let base = valid();
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rng = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let interesting: &[&[u8]] = &[
            b"-1",
            b"1e999",
            b"null",
            b"\"\"",
            b"[]",
            b"{}",
            b"18446744073709551616",
            b"\"profiler/2\"",
        ];
        for _ in 0..3000 {
            let mut m = base.clone();
            for _ in 0..(1 + rng() % 4) {
                let at = (rng() % m.len() as u64) as usize;
                match rng() % 4 {
                    0 => m[at] = rng() as u8,
                    1 => m.truncate(at),
                    2 => {
                        let ins = interesting[(rng() % interesting.len() as u64) as usize];
                        m.splice(at..at, ins.iter().copied());
                    }
                    _ => {
                        let end = (at + (rng() % 16) as usize).min(m.len());
                        m.drain(at..end);
                    }
                }
                if m.is_empty() {
                    break;
                }
            }
            let _ = parse(Path::new("fuzz"), &m);
        }
    }
}

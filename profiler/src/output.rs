//! Writing result files: the output directory is checked before recording
//! (so a bad path fails fast, not after a long recording), and each file is
//! written to a temporary name and renamed into place, so a reader never
//! sees half a file.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use crate::error::Error;

/// Creates `dir` if needed and checks that files can be created in it.
pub fn prepare_dir(dir: &Path) -> Result<(), Error> {
    let err = |reason: String| Error::Output {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(err("exists and is not a directory".into()));
    }
    fs::create_dir_all(dir).map_err(|e| err(format!("cannot create it: {e}")))?;
    let probe = dir.join(format!(".profiler-write-test-{}", std::process::id()));
    fs::File::create(&probe).map_err(|e| err(format!("not writable: {e}")))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `dir/name` atomically; returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_and_writes() {
        let d = std::env::temp_dir().join(format!("profiler-out-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        prepare_dir(&d.join("sub")).unwrap();
        let p = write_file(&d.join("sub"), "a.txt", b"hello").unwrap();
        assert_eq!(fs::read_to_string(p).unwrap(), "hello");
        fs::write(d.join("file"), b"x").unwrap();
        let e = prepare_dir(&d.join("file")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}

//! Writing result files safely, as root, next to things we do not control:
//!
//! - the output directory is checked before recording, so a bad path fails
//!   fast, and an existing one holding a profile is not clobbered unless
//!   `--force`;
//! - each file is written to a fresh temporary name created with
//!   `O_EXCL | O_NOFOLLOW` and mode 0600 (profiles hold command lines and
//!   function names), then renamed into place: a reader never sees half a
//!   file, and a symlink planted under the final name is replaced, never
//!   followed;
//! - under sudo, files and created directories are given to the invoking
//!   user (`SUDO_UID`/`SUDO_GID`);
//! - if writing fails late (disk full, directory removed), everything is
//!   written to a rescue directory in the temp dir instead, and the error
//!   names it: a recording is never lost.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use crate::error::Error;

/// Files whose presence means "this directory already holds a profile".
const OURS: &[&str] = &["profile.json", "report.txt"];

/// The invoking user under sudo, when we are root.
pub fn sudo_owner() -> Option<(u32, u32)> {
    // SAFETY: trivial syscall.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    Some((uid, gid))
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Creates `dir` if needed (mode 0700, owned by the sudo user) and checks
/// that files can be created in it and that it holds no profile already
/// (unless `force`).
pub fn prepare_dir(dir: &Path, force: bool) -> Result<(), Error> {
    let err = |reason: String| Error::Output {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(err("exists and is not a directory".into()));
    }
    if !dir.exists() {
        // Create missing parents too; only the directories we create are
        // given to the sudo user.
        let mut missing = Vec::new();
        let mut p = Some(dir);
        while let Some(d) = p {
            if d.as_os_str().is_empty() || d.exists() {
                break;
            }
            missing.push(d.to_path_buf());
            p = d.parent();
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create it: {e}")))?;
        for d in missing {
            chown(&d, sudo_owner())
                .map_err(|e| err(format!("cannot give it to the sudo user: {e}")))?;
        }
    } else if !force && let Some(f) = OURS.iter().find(|f| dir.join(f).symlink_metadata().is_ok()) {
        return Err(err(format!(
            "already holds a profile ({f}); use --force to overwrite it"
        )));
    }
    let probe = dir.join(format!(".profiler-write-test-{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&probe)
        .map_err(|e| err(format!("not writable: {e}")))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `dir/name` atomically and safely; returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    write_file_with(dir, name, |f| f.write_all(bytes))
}

/// Writes `dir/name` atomically and safely with what `fill` writes to it;
/// returns the path.
pub fn write_file_with(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        chown(&tmp, sudo_owner())?;
        // rename() replaces whatever is at `path` (a planted symlink
        // included) without following it.
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// A directory for files that could not be written where asked.
pub fn rescue_dir() -> std::io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("profiler-rescue-{}-{stamp}", std::process::id()));
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    chown(&dir, sudo_owner())?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("profiler-out-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn prepares_and_writes_private_files() {
        let d = tmp("basic");
        prepare_dir(&d.join("sub"), false).unwrap();
        let p = write_file(&d.join("sub"), "a.txt", b"hello").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "hello");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(d.join("sub")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::write(d.join("file"), b"x").unwrap();
        let e = prepare_dir(&d.join("file"), false).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_existing_profile_is_not_clobbered_without_force() {
        let d = tmp("force");
        prepare_dir(&d, false).unwrap();
        write_file(&d, "profile.json", b"{}").unwrap();
        let e = prepare_dir(&d, false).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        prepare_dir(&d, true).unwrap();
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let d = tmp("symlink");
        prepare_dir(&d, false).unwrap();
        let victim = d.join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("report.txt")).unwrap();
        std::os::unix::fs::symlink(
            &victim,
            d.join(format!(".report.txt.tmp-{}", std::process::id())),
        )
        .unwrap();
        write_file(&d, "report.txt", b"report").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            !fs::symlink_metadata(d.join("report.txt"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(d.join("report.txt")).unwrap(), "report");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rescue_dir_is_private() {
        let r = rescue_dir().unwrap();
        assert_eq!(
            fs::metadata(&r).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::remove_dir_all(&r).unwrap();
    }
}

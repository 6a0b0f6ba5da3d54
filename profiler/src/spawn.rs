//! Starting the command of `profiler record` so that nothing it does is
//! missed: the child is forked and waits on a pipe until the kernel side
//! traces it, then execs. Exec failures come back through a close-on-exec
//! pipe, so "command not found" is an error here, not a silent exit 127.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::error::Error;

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    Code(i32),
    Signal(i32),
}

impl ExitInfo {
    /// The exit code a shell would report (128+N for signal N).
    pub fn shell_code(self) -> i32 {
        match self {
            ExitInfo::Code(c) => c,
            ExitInfo::Signal(s) => 128 + s,
        }
    }
}

/// A forked child waiting to exec.
#[derive(Debug)]
pub struct Child {
    pub pid: u32,
    go: Option<OwnedFd>,
    exec_err: Option<OwnedFd>,
    pub argv: Vec<String>,
    reaped: Option<ExitInfo>,
}

fn pipe_cloexec() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid array; both fds are owned on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Child {
    /// Forks a child that will exec `argv` once [`Child::release`]d.
    pub fn fork_waiting(argv: &[String]) -> Result<Child, Error> {
        let Some(first) = argv.first() else {
            return Err(Error::Usage("record: no command given after --".into()));
        };
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                Error::Usage(format!("record: argument of '{first}' contains a NUL byte"))
            })?;
        let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let io = |e: std::io::Error| Error::Usage(format!("record: cannot start '{first}': {e}"));
        let (go_r, go_w) = pipe_cloexec().map_err(io)?;
        let (err_r, err_w) = pipe_cloexec().map_err(io)?;
        // SAFETY: the child only calls async-signal-safe functions (read,
        // execvp, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            unsafe {
                let mut b = 0u8;
                let n = libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                if n == 1 {
                    libc::execvp(ptrs[0], ptrs.as_ptr());
                }
                let errno = *libc::__errno_location();
                let bytes = errno.to_ne_bytes();
                libc::write(err_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        drop(go_r);
        drop(err_w);
        Ok(Child {
            pid: pid as u32,
            go: Some(go_w),
            exec_err: Some(err_r),
            argv: argv.to_vec(),
            reaped: None,
        })
    }

    /// Lets the child exec; returns once the exec succeeded or failed.
    pub fn release(&mut self) -> Result<(), Error> {
        if let Some(go) = self.go.take() {
            // SAFETY: one byte from a valid buffer to our pipe.
            unsafe { libc::write(go.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        }
        let Some(err) = self.exec_err.take() else {
            return Ok(());
        };
        let mut buf = [0u8; 4];
        // SAFETY: read into a valid buffer; returns 0 when exec closed it.
        let n = unsafe { libc::read(err.as_raw_fd(), buf.as_mut_ptr().cast(), 4) };
        if n == 4 {
            let e = std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf));
            let _ = self.wait();
            return Err(Error::Command(format!(
                "cannot run '{}': {e}",
                self.argv[0]
            )));
        }
        Ok(())
    }

    /// Reaps the child if it exited.
    pub fn try_wait(&mut self) -> Option<ExitInfo> {
        if self.reaped.is_some() {
            return self.reaped;
        }
        let mut status = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
        if r == self.pid as i32 {
            self.reaped = Some(decode_status(status));
        }
        self.reaped
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> Option<ExitInfo> {
        if self.reaped.is_none() {
            let mut status = 0;
            // SAFETY: our own child.
            let r = unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
            if r == self.pid as i32 {
                self.reaped = Some(decode_status(status));
            }
        }
        self.reaped
    }

    pub fn signal(&self, sig: i32) {
        if self.reaped.is_none() {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(self.pid as i32, sig) };
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Never leave the command behind (waiting on the go pipe, or
        // running after the profiler failed).
        if self.reaped.is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.wait();
        }
    }
}

fn decode_status(status: i32) -> ExitInfo {
    if libc::WIFSIGNALED(status) {
        ExitInfo::Signal(libc::WTERMSIG(status))
    } else {
        ExitInfo::Code(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_command_after_release_and_reports_its_status() {
        let mut c = Child::fork_waiting(&["sh".into(), "-c".into(), "exit 7".into()]).unwrap();
        assert_eq!(c.try_wait(), None, "waits for release");
        c.release().unwrap();
        assert_eq!(c.wait(), Some(ExitInfo::Code(7)));
        assert_eq!(ExitInfo::Signal(9).shell_code(), 137);
    }

    #[test]
    fn a_missing_command_is_an_error() {
        let mut c = Child::fork_waiting(&["/nonexistent/cmd".into()]).unwrap();
        let e = c.release().unwrap_err();
        assert!(
            e.to_string().contains("cannot run '/nonexistent/cmd'"),
            "{e}"
        );
        assert!(Child::fork_waiting(&[]).is_err());
    }
}

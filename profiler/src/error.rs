//! Errors that end a command, each with its own exit code (documented in
//! README.md), so scripts can tell bad input from a missing privilege.

use std::path::PathBuf;

/// A failure the user can act on. Anything else is reported through
/// `anyhow` with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("no process with pid {0} (is it still running?)")]
    NoSuchPid(i64),
    #[error("pid {pid} ({comm}) is a kernel thread; profiler traces user-space processes")]
    KernelThread { pid: u32, comm: String },
    #[error("pid {pid} ({comm}) is a zombie: it has exited and waits to be reaped")]
    Zombie { pid: u32, comm: String },
    #[error("pid {0} is this profiler itself")]
    OwnPid(u32),
    #[error("{0}")]
    Privilege(String),
    #[error("{0}")]
    KernelFeature(String),
    #[error("output directory {path}: {reason}")]
    Output { path: PathBuf, reason: String },
    /// A profile or budget given to `report`/`diff` is unreadable or wrong.
    #[error("{0}")]
    Input(String),
    /// `record`: the command could not be started.
    #[error("{0}")]
    Command(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::NoSuchPid(_)
            | Error::KernelThread { .. }
            | Error::Zombie { .. }
            | Error::OwnPid(_) => exit::TARGET,
            Error::Privilege(_) => exit::PRIVILEGE,
            Error::KernelFeature(_) => exit::KERNEL,
            Error::Output { .. } => exit::OUTPUT,
            Error::Command(_) => exit::COMMAND,
            Error::Input(_) => exit::USAGE,
        }
    }
}

/// Exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    /// Anything unexpected.
    pub const FAILURE: i32 = 1;
    /// `diff`: a metric regressed beyond its budget.
    pub const REGRESSION: i32 = 1;
    /// Bad command line (clap uses 2 too).
    pub const USAGE: i32 = 2;
    /// The target pid is missing, a kernel thread, a zombie, or ourselves.
    pub const TARGET: i32 = 3;
    /// Not root / missing CAP_BPF or CAP_PERFMON.
    pub const PRIVILEGE: i32 = 4;
    /// The kernel lacks BTF, tracefs or a needed tracepoint.
    pub const KERNEL: i32 = 5;
    /// The output directory cannot be created or written.
    pub const OUTPUT: i32 = 6;
    /// `record`: the command could not be run (as a shell says).
    pub const COMMAND: i32 = 127;
}

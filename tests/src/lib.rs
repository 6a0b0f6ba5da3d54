//! Helpers for the end-to-end tests: finding the `profiler` binary, running
//! fixtures that are killed when dropped, talking to them line by line, and
//! reading `/proc` counters to cross-check the profiler's numbers.
//!
//! Privileged tests call [`require_root`] first: they panic with a clear
//! message instead of passing vacuously when not run as root.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// A pipe as (read end, write end), for the fixture programs.
pub fn pipe() -> (fs::File, fs::File) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: valid array; each fd is owned exactly once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (r.into(), w.into())
}

/// Panics unless running as root: the BPF tests cannot run otherwise.
pub fn require_root() {
    // SAFETY: trivial syscall.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "this end-to-end test loads eBPF programs and must run as root (use `cargo xtask test` as root)"
        );
    }
}

/// The `profiler` binary built in the same target directory as this test.
pub fn profiler_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/profiler
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("profiler");
    assert!(
        p.exists(),
        "{} not built: run the tests through `cargo test --workspace` / `cargo xtask test`",
        p.display()
    );
    p
}

/// A child process killed (and reaped) on drop.
pub struct Fixture {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Fixture {
    /// Starts `bin` with `args` and waits for its `ready <pid>` line.
    pub fn start(bin: &str, args: &[&str]) -> Fixture {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning fixture {bin}: {e}"));
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut f = Fixture {
            child,
            stdin,
            lines,
        };
        let ready = f.expect_line("ready", Duration::from_secs(10));
        assert_eq!(ready, format!("ready {}", f.pid()), "fixture's ready line");
        f
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to fixture");
        stdin.flush().expect("flush");
    }

    /// Waits for a line starting with `prefix`.
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(_) => panic!("fixture did not print '{prefix}' within {timeout:?}"),
            }
        }
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "fixture did not exit within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `profiler` with its stderr watched for the readiness line.
pub struct Profiler {
    pub child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr_all: std::sync::Arc<std::sync::Mutex<String>>,
}

/// What a finished profiler run produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Profiler {
    /// Starts `profiler args...`.
    pub fn start(args: &[&str]) -> Profiler {
        let mut child = Command::new(profiler_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn profiler");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, stderr_lines) = mpsc::channel();
        let all = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let all2 = all.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut a) = all2.lock() {
                    a.push_str(&line);
                    a.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        Profiler {
            child,
            stderr_lines,
            stderr_all: all,
        }
    }

    /// `profiler attach -p PID -o OUT EXTRA...`, once it says it is
    /// recording: how most end-to-end tests start.
    pub fn attach(pid: u32, out: &std::path::Path, extra: &[&str]) -> Profiler {
        let (pid, out) = (pid.to_string(), out.to_str().expect("UTF-8 path"));
        let mut args = vec!["attach", "-p", &pid, "-o", out];
        args.extend_from_slice(extra);
        let mut p = Profiler::start(&args);
        p.wait_recording(Duration::from_secs(60));
        p
    }

    /// Waits until the profiler says it is recording.
    pub fn wait_recording(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(l) if l.contains("recording pid") => return,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    let err = self
                        .stderr_all
                        .lock()
                        .map(|s| s.clone())
                        .unwrap_or_default();
                    panic!("profiler did not start recording within {timeout:?}; stderr:\n{err}");
                }
            }
        }
    }

    /// Waits for it to finish.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let mut stdout = self.child.stdout.take().expect("stdout");
        let reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("profiler did not finish within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = reader.join().unwrap_or_default();
        // Let the stderr thread catch up.
        thread::sleep(Duration::from_millis(50));
        let stderr = self
            .stderr_all
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

/// Runs `profiler args...` to completion.
pub fn run_profiler(args: &[&str]) -> Output {
    Profiler::start(args).finish(Duration::from_secs(60))
}

/// `(voluntary, nonvoluntary)` context switches of each thread of `pid`,
/// from `/proc/<pid>/task/<tid>/status`.
pub fn proc_switches(pid: u32) -> BTreeMap<u32, (u64, u64)> {
    let mut m = BTreeMap::new();
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return m;
    };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(s) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let get = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        m.insert(
            tid,
            (
                get("voluntary_ctxt_switches:"),
                get("nonvoluntary_ctxt_switches:"),
            ),
        );
    }
    m
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Asserts `actual` is within `rel` (fraction) plus `abs_ns` of `expected`.
#[track_caller]
pub fn assert_near(what: &str, actual: u64, expected: u64, rel: f64, abs_ns: u64) {
    let tol = (expected as f64 * rel) as u64 + abs_ns;
    let diff = actual.abs_diff(expected);
    assert!(
        diff <= tol,
        "{what}: {actual} ns, expected {expected} ns ± {tol} ns (off by {diff} ns)"
    );
}

/// Builds the Go fixture `tests/go/<name>` (once per test binary run) and
/// returns the binary; `stripped` builds with `-ldflags=-s -w` (no symbol
/// table, only .gopclntab). Needs Go (`cargo xtask setup` installs Debian's
/// golang-go).
pub fn go_fixture(name: &str, stripped: bool) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("go")
        .join(name);
    let exe = std::env::current_exe().expect("current_exe");
    let out_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("go-fixtures");
    fs::create_dir_all(&out_dir).expect("create go-fixtures dir");
    let bin = out_dir.join(if stripped {
        format!("{name}-stripped")
    } else {
        name.to_string()
    });
    // Serialize concurrent builds of the same fixture across test threads.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = bin.with_extension(format!("tmp{}", std::process::id()));
    let mut cmd = Command::new("go");
    cmd.current_dir(&src)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .env("GOCACHE", out_dir.join("cache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", if name.contains("cgo") { "1" } else { "0" });
    if stripped {
        cmd.arg("-ldflags=-s -w");
    }
    cmd.arg(".");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("running `go build` for {name} ({e}); install Go: `cargo xtask setup` does")
    });
    assert!(
        out.status.success(),
        "go build {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(&tmp, &bin).expect("install go fixture");
    bin
}

/// Waits until every thread of `pid` is asleep (state `S`) and has stayed
/// so for a moment: a quiet starting point for counting switches.
pub fn wait_all_sleeping(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let all_s = || {
        let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        rd.flatten().all(|e| {
            fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('S'))
                })
                .unwrap_or(false)
        })
    };
    loop {
        if all_s() {
            thread::sleep(Duration::from_millis(30));
            if all_s() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "threads of {pid} did not all go to sleep within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

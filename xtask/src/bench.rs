//! `cargo xtask bench [--smoke] [--reps N] [--seconds S]`: what tracing
//! costs the target, measured as throughput ratios against untraced runs
//! and against peer tools in the same run, interleaved.
//!
//! Workloads (each prints its own operations per second): a two-thread
//! pipe ping-pong pinned to one CPU (a context switch per message) and
//! across CPUs; a mixed program (CPU burn, sleeps, blocking reads, thread
//! churn: `tests/src/bin/mixed.rs`); a Go program with 64 goroutine pairs
//! in blocking read(2)/write(2) and 16 in nanosleep(2)
//! (`tests/go/gobench`). Configurations: untraced;
//! `profiler attach` with defaults; `profiler --no-stacks`; `profiler`
//! attached to another process (what bystanders pay); and, when installed
//! (Debian's libbpf-tools, linux-perf, bpftrace, installed here when
//! possible): `offcputime -p`, `perf sched record -p`, and a bpftrace script
//! with sched_switch stacks and syscall latency for the pid. Then one long
//! recording (60 s of the pinned ping-pong, defaults) for the profiler's
//! memory and stop-to-files time, and the userspace pipeline
//! micro-benchmark (`profiler/benches/pipeline.rs`).
//!
//! Writes `bench/RESULTS.md`. `--smoke` runs one short repetition of each
//! configuration (CI runs it so the bench does not rot); its numbers mean
//! nothing.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::util::{cargo, root, sh};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Config {
    Untraced,
    Profiler,
    ProfilerNoStacks,
    ProfilerTimeline,
    ProfilerBystander,
    ProfilerCost,
    BystanderCost,
    Offcputime,
    PerfSched,
    Bpftrace,
}

impl Config {
    /// One of ours.
    fn is_profiler(self) -> bool {
        self.bystander() || self.on_target()
    }

    /// Ours, attached to the workload (ends when it exits).
    fn on_target(self) -> bool {
        matches!(
            self,
            Config::Profiler
                | Config::ProfilerNoStacks
                | Config::ProfilerTimeline
                | Config::ProfilerCost
        )
    }

    /// Ours, attached to another process.
    fn bystander(self) -> bool {
        matches!(self, Config::ProfilerBystander | Config::BystanderCost)
    }

    /// Ours, measuring its kernel programs' cost.
    fn measures_cost(self) -> bool {
        matches!(self, Config::ProfilerCost | Config::BystanderCost)
    }

    fn name(self) -> &'static str {
        match self {
            Config::Untraced => "untraced",
            Config::Profiler => "profiler (defaults)",
            Config::ProfilerNoStacks => "profiler --no-stacks",
            Config::ProfilerTimeline => "profiler --timeline",
            Config::ProfilerBystander => "profiler on another process",
            Config::ProfilerCost => "profiler --measure-overhead",
            Config::BystanderCost => "profiler --measure-overhead on another process",
            Config::Offcputime => "libbpf-tools offcputime -p",
            Config::PerfSched => "perf sched record -p",
            Config::Bpftrace => "bpftrace (switch stacks + syscall latency)",
        }
    }
}

/// One traced run's measurements.
#[derive(Default, Clone, Debug)]
struct Sample {
    ops: f64,
    tracer_cpu_s: f64,
    tracer_rss_mb: f64,
    stop_to_files_s: Option<f64>,
    switches: Option<u64>,
    /// Switches, wakeups, samples and records the kernel side handled.
    kernel_events: Option<u64>,
    lost: Option<u64>,
    /// Non-zero loss causes, "stacks 3, ringbuf_full 1".
    lost_causes: String,
    /// `--measure-overhead`: (program, calls, run ns).
    costs: Vec<(String, u64, u64)>,
    /// `--measure-overhead`: CPUs and window, for the machine's CPU share.
    window_cpu_ns: u64,
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(bin))
            .find(|c| c.is_file())
    })
}

fn ensure_peers() {
    let missing = ["offcputime", "perf", "bpftrace"]
        .iter()
        .any(|b| which(b).is_none());
    if missing {
        eprintln!("xtask: installing peer tools (libbpf-tools, linux-perf, bpftrace) if available");
        // Bounded: a held dpkg lock or a dead mirror must not hang the run.
        let _ = Command::new("timeout")
            .args([
                "600",
                "apt-get",
                "install",
                "-y",
                "-qq",
                "libbpf-tools",
                "linux-perf",
                "bpftrace",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
    }
}

/// Waits at most `limit` for the child to exit and returns (CPU seconds,
/// max RSS MB), or `None` (child still running) when it has not.
fn reap_within(child: &Child, limit: Duration) -> Option<(f64, f64)> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: zeroed rusage is valid; polling our own child.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(child.id() as i32, &mut status, libc::WNOHANG, &mut ru) };
        if r != 0 {
            let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
            return Some((
                t(ru.ru_utime) + t(ru.ru_stime),
                ru.ru_maxrss as f64 / 1024.0,
            ));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Ends a tracer and returns (CPU seconds, max RSS MB). Every wait is
/// bounded: a tool that ignores its stop signal is killed and its run
/// fails, instead of hanging the bench (bpftrace 0.17 loses a SIGINT that
/// arrives before its event loop, and then runs forever; a second one
/// stops it).
fn stop_tracer(child: Child, cfg: Config) -> Result<(f64, f64)> {
    // Ours ends by itself when its target exits; it gets time to write
    // a long recording's files before it is told to stop.
    if cfg.on_target() {
        stop_within(child, cfg.name(), false, Duration::from_secs(120))
    } else {
        stop_within(child, cfg.name(), true, Duration::from_secs(20))
    }
}

/// `stop_tracer` with its waits: `wait` after the first SIGINT (or
/// without one, when `interrupt` is false), as long again after a second,
/// then SIGKILL and an error.
fn stop_within(child: Child, name: &str, interrupt: bool, wait: Duration) -> Result<(f64, f64)> {
    if interrupt {
        signal(&child, libc::SIGINT);
    }
    if let Some(r) = reap_within(&child, wait) {
        return Ok(r);
    }
    signal(&child, libc::SIGINT);
    if let Some(r) = reap_within(&child, wait) {
        return Ok(r);
    }
    signal(&child, libc::SIGKILL);
    let _ = reap_within(&child, Duration::from_secs(10));
    bail!(
        "{name} did not exit within {:.1} s of being told to stop (SIGINT twice); killed",
        (wait * 2).as_secs_f64()
    )
}

/// Waits until a peer tool has attached: it holds BPF links or perf
/// events, and their number has not changed for half a second. A fixed
/// sleep measured peers that were still starting (bpftrace compiles its
/// script first; several seconds on a cold machine).
fn wait_attached(t: &mut Child, cfg: Config, log: &Path) -> Result<()> {
    let fds = format!("/proc/{}/fd", t.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        peer_alive(t, cfg, log)?;
        let n = std::fs::read_dir(&fds)
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|l| {
                        let l = l.to_string_lossy();
                        l.contains("bpf_link") || l.contains("[perf_event]")
                    })
                    .count()
            })
            .unwrap_or(0);
        if n != last {
            (last, since) = (n, Instant::now());
        } else if n > 0 && since.elapsed() >= Duration::from_millis(500) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} had not attached after 60 s ({n} BPF links or perf events open)",
                cfg.name()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of a child's output, read by a thread, so that waiting for
/// one is bounded.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn of(r: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines().map_while(Result::ok) {
                // The receiver may be gone; keep draining the pipe.
                let _ = tx.send(l);
            }
        });
        Lines(rx)
    }

    fn next_within(&self, limit: Duration, what: &str) -> Result<String> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.0.recv_timeout(limit) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => {
                bail!("no {what} within {:.1} s", limit.as_secs_f64())
            }
            Err(RecvTimeoutError::Disconnected) => bail!("output closed before a {what}"),
        }
    }
}

/// Kills and reaps on drop whatever a failed run left behind (a tracer
/// attached to a bystander `sleep`, a workload waiting for its start).
struct Owned(Option<Child>);

impl Owned {
    fn take(&mut self) -> Option<Child> {
        self.0.take()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts peer tool `bin` with its errors in `log`.
fn peer(bin: &str, args: &[&str], log: &Path) -> Result<Child> {
    Ok(
        Command::new(which(bin).with_context(|| format!("{bin} missing"))?)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?,
    )
}

/// Fails, with the tool's own words, when a peer tool is no longer running
/// (a script it rejected, a missing kernel feature): its run would
/// otherwise pass for a cheap tracer.
fn peer_alive(t: &mut Child, cfg: Config, log: &Path) -> Result<()> {
    if let Some(status) = t.try_wait()? {
        let err = std::fs::read_to_string(log).unwrap_or_default();
        bail!(
            "{} exited early ({status}): {}",
            cfg.name(),
            err.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(())
}

/// A workload program: `PROGRAM SECONDS [ARGS]`, which prints
/// `ready <pid>`, waits for a line on stdin, runs, and prints
/// `ops_per_sec N`.
struct Workload {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

fn run_one(bin: &Path, w: &Workload, cfg: Config, secs: f64, scratch: &Path) -> Result<Sample> {
    let mut target = Owned(Some(
        Command::new(&w.program)
            .arg(secs.to_string())
            .args(&w.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", w.program.display()))?,
    ));
    let out = Lines::of(
        target
            .0
            .as_mut()
            .and_then(|t| t.stdout.take())
            .context("stdout")?,
    );
    let ready = out.next_within(Duration::from_secs(30), "ready line from the workload")?;
    let pid: u32 = ready
        .strip_prefix("ready ")
        .context("ready line")?
        .trim()
        .parse()?;
    let mut bystander = Owned(None);
    let peer_log = scratch.join("peer-stderr.txt");
    let outdir = scratch.join(format!("{}-{:?}", w.name, cfg).replace(' ', "_"));
    let _ = std::fs::remove_dir_all(&outdir);
    let profiler = |extra: &[&str], p: u32| -> Result<Child> {
        let mut c = Command::new(bin.join("profiler"));
        c.args(["attach", "--pid", &p.to_string(), "--output"])
            .arg(&outdir)
            .args(extra);
        Ok(c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?)
    };
    let tracer: Option<Child> = match cfg {
        Config::Untraced => None,
        Config::Profiler => Some(profiler(&[], pid)?),
        Config::ProfilerNoStacks => Some(profiler(&["--no-stacks"], pid)?),
        Config::ProfilerTimeline => Some(profiler(&["--timeline"], pid)?),
        Config::ProfilerCost => Some(profiler(&["--measure-overhead"], pid)?),
        Config::ProfilerBystander | Config::BystanderCost => {
            let s = Command::new("sleep").arg("3600").spawn()?;
            let extra: &[&str] = if cfg.measures_cost() {
                &["--measure-overhead"]
            } else {
                &[]
            };
            let id = s.id();
            bystander = Owned(Some(s));
            Some(profiler(extra, id)?)
        }
        Config::Offcputime => Some(peer("offcputime", &["-p", &pid.to_string()], &peer_log)?),
        Config::PerfSched => {
            let data = scratch.join("perf.data");
            let data = data.to_str().context("scratch path")?;
            Some(peer(
                "perf",
                &["sched", "record", "-p", &pid.to_string(), "-o", data],
                &peer_log,
            )?)
        }
        Config::Bpftrace => {
            // `args->field`: bpftrace before 0.18 rejects `args.field`.
            let script = format!(
                "tracepoint:sched:sched_switch /args->prev_pid == {pid} || pid == {pid}/ {{ @s[kstack, ustack] = count(); }} \
                 tracepoint:raw_syscalls:sys_enter /pid == {pid}/ {{ @t[tid] = nsecs; }} \
                 tracepoint:raw_syscalls:sys_exit /pid == {pid} && @t[tid]/ {{ @lat = hist(nsecs - @t[tid]); delete(@t[tid]); }}"
            );
            Some(peer("bpftrace", &["-e", &script], &peer_log)?)
        }
    };
    let mut tracer = Owned(tracer);
    // Wait until the tracer is live.
    if let Some(t) = tracer.0.as_mut() {
        if cfg.is_profiler() {
            // Its stderr is drained by the reader thread to the end.
            let err = Lines::of(t.stderr.take().context("stderr")?);
            while !err
                .next_within(
                    Duration::from_secs(60),
                    "\"recording pid\" line from the profiler",
                )?
                .contains("recording pid")
            {}
        } else {
            wait_attached(t, cfg, &peer_log)?;
        }
    }
    writeln!(
        target
            .0
            .as_mut()
            .and_then(|t| t.stdin.as_mut())
            .context("stdin")?,
        "go"
    )?;
    let line = out.next_within(
        Duration::from_secs_f64(secs + 60.0),
        "ops_per_sec line from the workload",
    )?;
    let ops: f64 = line
        .strip_prefix("ops_per_sec ")
        .context("result line")?
        .trim()
        .parse()?;
    if let Some(mut t) = target.take() {
        let _ = t.wait();
    }
    let exited = Instant::now();
    let mut s = Sample {
        ops,
        ..Sample::default()
    };
    if let Some(mut t) = tracer.take() {
        if !cfg.is_profiler() {
            // A peer that died during the run measured nothing.
            peer_alive(&mut t, cfg, &peer_log)?;
        }
        let (cpu, rss) = stop_tracer(t, cfg)?;
        s.tracer_cpu_s = cpu;
        s.tracer_rss_mb = rss;
        if cfg.is_profiler() {
            s.stop_to_files_s = Some(exited.elapsed().as_secs_f64());
            // The totals sit near the top; a timeline profile is hundreds of
            // MB, and parsing it whole would bloat this process (and the
            // max RSS its later children inherit).
            let profile = outdir.join("profile.json");
            // An unreadable profile leaves these columns empty.
            let head = read_head(&profile, 64 * 1024).unwrap_or_default();
            s.switches = number_after(&head, "\"context_switches\":");
            s.kernel_events = number_after(&head, "\"kernel_events\":");
            s.lost = number_after(&head, "\"lost_events\":");
            // By cause: the non-zero entries of the `lost` object.
            s.lost_causes = json_after(&head, "\"lost\":")
                .and_then(|v| {
                    v.as_object().map(|o| {
                        o.iter()
                            .filter_map(|(k, n)| {
                                n.as_u64().filter(|&n| n > 0).map(|n| format!("{k} {n}"))
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                })
                .unwrap_or_default();
            if cfg.measures_cost() {
                let window = number_after(&head, "\"duration_ns\":").unwrap_or(0);
                (s.costs, s.window_cpu_ns) = program_costs(&profile, window)?;
            }
        }
    }
    drop(bystander);
    Ok(s)
}

/// `pairs` adjacent runs of `w` untraced and under `cfg`, the order
/// alternating: the throughput ratio of each pair, sorted.
fn paired(
    bin: &Path,
    w: &Workload,
    cfg: Config,
    pairs: usize,
    secs: f64,
    scratch: &Path,
) -> Result<Vec<f64>> {
    let mut ratios = Vec::new();
    for i in 0..pairs {
        let mut order = [Config::Untraced, cfg];
        if i % 2 == 1 {
            order.reverse();
        }
        let a = run_one(bin, w, order[0], secs, scratch)?;
        let b = run_one(bin, w, order[1], secs, scratch)?;
        let (u, t) = if i % 2 == 1 { (b, a) } else { (a, b) };
        ratios.push(t.ops / u.ops.max(1.0));
    }
    ratios.sort_by(f64::total_cmp);
    Ok(ratios)
}

/// The `overhead` section of a profile written with `--measure-overhead`
/// (a small file: no timeline).
/// Returns (program, calls, run ns) and the machine's CPU time over the
/// window (`window_ns` × CPUs).
type Costs = (Vec<(String, u64, u64)>, u64);

fn program_costs(path: &Path, window_ns: u64) -> Result<Costs> {
    // Only the file's end is read: the `overhead` section is the last key.
    // Parsing a whole profile (tens of MB with thousands of threads) would
    // raise this process's peak RSS, which every child it starts
    // afterwards inherits as its own `ru_maxrss` floor (exec keeps the old
    // mm's high-water mark), and spoil the tracer memory column.
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
    let mut tail = String::new();
    f.read_to_string(&mut tail)?;
    let at = tail
        .rfind("\"overhead\":")
        .with_context(|| format!("no overhead section in {}", path.display()))?;
    let v = json_after(&tail[at..], "\"overhead\":")
        .with_context(|| format!("unreadable overhead section in {}", path.display()))?;
    let costs = v["programs"]
        .as_array()
        .with_context(|| format!("no programs in the overhead section of {}", path.display()))?
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                p["calls"].as_u64().unwrap_or(0),
                p["run_ns"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let cpus = v["cpus"].as_u64().unwrap_or(1);
    Ok((costs, window_ns * cpus))
}

/// The JSON value after the first `key` in `text` (which may go on past
/// it, or be cut off after it).
fn json_after(text: &str, key: &str) -> Option<serde_json::Value> {
    let rest = text.split_once(key)?.1;
    serde_json::Deserializer::from_str(rest)
        .into_iter()
        .next()?
        .ok()
}

/// "sched_switch 570 ns, sched_wakeup 260 ns per call; 4.8% of the
/// machine's CPU" for the hot programs of one `--measure-overhead` run.
fn cost_line(s: &Sample) -> String {
    let per = |name: &str| {
        s.costs
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, c, ns)| {
                format!(
                    "{name} {} calls, {:.0} ns/call",
                    c,
                    *ns as f64 / (*c).max(1) as f64
                )
            })
            .unwrap_or_else(|| format!("{name} not measured"))
    };
    let total: u64 = s.costs.iter().map(|(_, _, ns)| ns).sum();
    format!(
        "{}; {}; all programs {:.1} ms of CPU, {:.2}% of the machine's",
        per("sched_switch"),
        per("sched_wakeup"),
        total as f64 / 1e6,
        total as f64 * 100.0 / s.window_cpu_ns.max(1) as f64
    )
}

fn read_head(path: &Path, n: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    let got = std::fs::File::open(path)?.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..got]).into_owned())
}

/// The integer after the first `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = text.split_once(key)?.1.trim_start();
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let med = if s.is_empty() { 0.0 } else { s[s.len() / 2] };
    (
        s.first().copied().unwrap_or(0.0),
        med,
        s.last().copied().unwrap_or(0.0),
    )
}

/// Builds the Go workload into `scratch`; `None` (with the reason printed)
/// when Go is missing or the build fails.
fn build_gobench(scratch: &Path) -> Option<PathBuf> {
    let out = scratch.join("gobench");
    let status = Command::new("go")
        .current_dir(root().join("tests/go/gobench"))
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .env("GOCACHE", scratch.join("gocache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        Ok(s) => {
            eprintln!("xtask: go build of tests/go/gobench failed ({s}): Go workload skipped");
            None
        }
        Err(e) => {
            eprintln!("xtask: cannot run go ({e}): Go workload skipped");
            None
        }
    }
}

/// Median of `f` over the runs that have it, `None` when none do.
fn median_of(v: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let xs: Vec<f64> = v.iter().filter_map(f).collect();
    (!xs.is_empty()).then(|| stats(&xs).1)
}

/// One table row per configuration.
fn table(results: &[(Config, Vec<Sample>)], base: f64, secs: f64) -> String {
    let mut md = String::from(
        "| configuration | ratio min / median / max | tracer CPU s (median) | tracer max RSS MB | switches seen (median) | kernel events/s (median) | lost (max, by cause) | target exit to files written (median) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (c, v) in results {
        if v.is_empty() {
            md.push_str(&format!("| {} | failed | | | | | | |\n", c.name()));
            continue;
        }
        let r: Vec<f64> = v.iter().map(|s| s.ops / base.max(1.0)).collect();
        let (lo, med, hi) = stats(&r);
        let (cpu, rss) = if *c == Config::Untraced {
            (String::new(), String::new())
        } else {
            let cpu = stats(&v.iter().map(|s| s.tracer_cpu_s).collect::<Vec<_>>()).1;
            let rss = stats(&v.iter().map(|s| s.tracer_rss_mb).collect::<Vec<_>>()).2;
            (format!("{cpu:.2}"), format!("{rss:.0}"))
        };
        let show = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map(f).unwrap_or_default();
        let switches = show(median_of(v, |s| s.switches.map(|e| e as f64)), &|x| {
            format!("{x:.0}")
        });
        let rate = show(
            median_of(v, |s| s.kernel_events.map(|e| e as f64 / secs)),
            &|x| format!("{x:.0}"),
        );
        let lost = v
            .iter()
            .filter(|s| s.lost.is_some())
            .max_by_key(|s| s.lost)
            .map(|s| match s.lost {
                Some(n) if n > 0 => format!("{n} ({})", s.lost_causes),
                n => n.unwrap_or(0).to_string(),
            })
            .unwrap_or_default();
        let stop = show(median_of(v, |s| s.stop_to_files_s), &|x| {
            format!("{x:.2} s")
        });
        md.push_str(&format!(
            "| {} | {lo:.2} / {med:.2} / {hi:.2} | {cpu} | {rss} | {switches} | {rate} | {lost} | {stop} |\n",
            c.name()
        ));
    }
    md
}

pub fn run(smoke: bool, reps: usize, secs: f64) -> Result<()> {
    if !crate::util::is_root() {
        bail!("the bench loads eBPF programs: run it as root");
    }
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "profiler",
        "-p",
        "profiler-tests",
        "--bins",
    ]))?;
    ensure_peers();
    let bin = root().join("target/release");
    let scratch = root().join("target/bench");
    std::fs::create_dir_all(&scratch)?;
    let (reps, secs) = if smoke { (1, 0.3) } else { (reps, secs) };
    let pingpong = bin.join("pingpong");
    let mut workloads = vec![
        Workload {
            name: "ping-pong pinned to one CPU",
            program: pingpong.clone(),
            args: vec!["0".into()],
        },
        Workload {
            name: "ping-pong across CPUs",
            program: pingpong.clone(),
            args: vec![],
        },
        Workload {
            name: "mixed: CPU burn, sleeps, blocking reads, thread churn",
            program: bin.join("mixed"),
            args: vec![],
        },
    ];
    if let Some(go) = build_gobench(&scratch) {
        workloads.push(Workload {
            name: "Go: 128 goroutines in blocking read/write, 16 in nanosleep",
            program: go,
            args: vec![],
        });
    }
    let mut configs = vec![
        Config::Untraced,
        Config::Profiler,
        Config::ProfilerNoStacks,
        Config::ProfilerTimeline,
        Config::ProfilerBystander,
        Config::ProfilerCost,
        Config::BystanderCost,
    ];
    for (c, b) in [
        (Config::Offcputime, "offcputime"),
        (Config::PerfSched, "perf"),
        (Config::Bpftrace, "bpftrace"),
    ] {
        if which(b).is_some() {
            configs.push(c);
        } else {
            eprintln!("xtask: {b} not installed: {} skipped", c.name());
        }
    }
    let mut md = String::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    md.push_str(&format!(
        "# Benchmark results\n\n{date}; kernel {}; CPU {cpu}; {} CPUs; {reps} repetition(s) of {secs} s per configuration, interleaved{}.\n\n\
         Throughput is the workload's own operations per second, as a ratio to the median untraced run of the same workload. \
         Kernel events are the context switches, wakeups, on-CPU samples and streamed records the profiler's kernel programs handled for traced threads, per second of the run; \
         lost counts every record, stack or map entry the kernel side could not keep.\n",
        kernel.trim(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if smoke { " (SMOKE RUN: numbers mean nothing)" } else { "" }
    ));
    // Runs of our own configurations that failed: the smoke run (CI) fails
    // on any. A peer tool's failure is its own; it is reported in the
    // results, under its table.
    let mut ours_failed = Vec::new();
    let mut broken_peers = Vec::new();
    for w in &workloads {
        let mut results: Vec<(Config, Vec<Sample>)> =
            configs.iter().map(|&c| (c, Vec::new())).collect();
        let mut failed = Vec::new();
        for rep in 0..reps {
            for (c, v) in results.iter_mut() {
                if broken_peers.contains(c) {
                    continue;
                }
                eprintln!("xtask: bench {} / {} / rep {}", w.name, c.name(), rep + 1);
                match run_one(&bin, w, *c, secs, &scratch) {
                    Ok(s) => v.push(s),
                    Err(e) => {
                        let what = format!("{} / {} / rep {}: {e:#}", w.name, c.name(), rep + 1);
                        eprintln!("xtask: bench run failed: {what}");
                        if c.is_profiler() || *c == Config::Untraced {
                            ours_failed.push(what);
                        } else {
                            // A peer that failed once (each failure can
                            // cost minutes of bounded waiting) is not run
                            // again in this bench.
                            broken_peers.push(*c);
                        }
                        failed.push(format!("{} rep {}: {e:#}", c.name(), rep + 1));
                    }
                }
            }
        }
        let base = results
            .iter()
            .find(|(c, _)| *c == Config::Untraced)
            .map(|(_, v)| stats(&v.iter().map(|s| s.ops).collect::<Vec<_>>()).1)
            .unwrap_or(0.0);
        md.push_str(&format!(
            "\n## {}\n\nUntraced median: {base:.0} ops/s.\n\n{}",
            w.name,
            table(&results, base, secs)
        ));
        if !failed.is_empty() {
            md.push_str("\nFailed runs (left out of the table):\n\n");
            for f in &failed {
                md.push_str(&format!("- {}\n", f.replace('|', "/")));
            }
            md.push_str("\nA peer tool that failed is not run again in this bench.\n");
        }
        // Per-call cost of the kernel programs, from the last run of each
        // `--measure-overhead` configuration.
        md.push_str("\nKernel programs, measured by the kernel's BPF run-time statistics (`--measure-overhead`, which adds two clock reads to each call, included in these times; ARCHITECTURE.md tells what an empty program measures):\n\n");
        for (c, v) in &results {
            if let Some(s) = v.iter().rev().find(|s| !s.costs.is_empty()) {
                md.push_str(&format!("- {}: {}\n", c.name(), cost_line(s)));
            }
        }
    }
    // What a bystander pays is a few percent at most, under this VM's
    // ±10% run-to-run noise: adjacent untraced/bystander pairs cancel the
    // drift, and their ratios' quartiles say how sure the median is.
    // Ratios against the median untraced run suffer this VM's run-to-run
    // drift (untraced runs alone spread ±10-15%); adjacent pairs cancel
    // it, and their quartiles say how sure the median is. Two targets are
    // measured this way: what a bystander pays (a few percent at most) and
    // the defaults across CPUs.
    let pairs = if smoke { 1 } else { 20 };
    for (w, cfg, title) in [
        (
            &workloads[0],
            Config::ProfilerBystander,
            "Bystander cost, paired runs",
        ),
        (
            &workloads[1],
            Config::Profiler,
            "Defaults across CPUs, paired runs",
        ),
    ] {
        eprintln!("xtask: bench {title} ({pairs})");
        let ratios = paired(&bin, w, cfg, pairs, secs, &scratch)?;
        let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
        md.push_str(&format!(
            "\n## {title}\n\n{pairs} adjacent pairs (order alternating) of the {}, untraced and with {}; throughput ratio per pair: median {:.3}, quartiles {:.3} / {:.3}, min {:.3}, max {:.3}.\n",
            w.name,
            cfg.name(),
            q(0.5),
            q(0.25),
            q(0.75),
            q(0.0),
            q(1.0)
        ));
    }
    // The long recording: what the profiler holds and how fast it writes
    // after a minute of ~200k switches/s.
    let long_secs = if smoke { 1.0 } else { 60.0 };
    eprintln!("xtask: bench long recording ({long_secs} s)");
    md.push_str(&format!(
        "\n## Long recording: {long_secs} s of the pinned ping-pong, profiler defaults\n\n"
    ));
    match run_one(&bin, &workloads[0], Config::Profiler, long_secs, &scratch) {
        Ok(s) => md.push_str(&format!(
            "Profiler max RSS {:.0} MB, CPU {:.2} s; {} switches seen, {:.0} kernel events/s, {} lost; target exit to files written {:.2} s.\n",
            s.tracer_rss_mb,
            s.tracer_cpu_s,
            s.switches.unwrap_or(0),
            s.kernel_events.unwrap_or(0) as f64 / long_secs,
            s.lost.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
            s.stop_to_files_s.unwrap_or(f64::NAN),
        )),
        Err(e) => {
            md.push_str(&format!("Failed: {e:#}\n"));
            ours_failed.push(format!("long recording: {e:#}"));
        }
    }
    // The userspace pipeline, without the kernel.
    eprintln!("xtask: bench userspace pipeline");
    let mut pipeline = cargo();
    pipeline.args(["bench", "-p", "profiler", "--bench", "pipeline", "--"]);
    if smoke {
        pipeline.arg("--smoke");
    }
    let out = pipeline
        .stderr(Stdio::inherit())
        .output()
        .context("running the pipeline micro-benchmark")?;
    if !out.status.success() {
        bail!("the pipeline micro-benchmark failed ({})", out.status);
    }
    md.push('\n');
    md.push_str(&String::from_utf8_lossy(&out.stdout));
    let out = root().join("bench");
    std::fs::create_dir_all(&out)?;
    let file = if smoke {
        scratch.join("RESULTS-smoke.md")
    } else {
        out.join("RESULTS.md")
    };
    std::fs::write(&file, &md)?;
    println!("{md}");
    eprintln!("xtask: wrote {}", file.display());
    if smoke && !ours_failed.is_empty() {
        bail!(
            "{} run(s) of the profiler's own configurations failed:\n{}",
            ours_failed.len(),
            ours_failed.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Child {
        let c = Command::new("sh").args(["-c", script]).spawn().unwrap();
        // Let the shell set its traps before it is signalled.
        std::thread::sleep(Duration::from_millis(200));
        c
    }

    #[test]
    fn a_tracer_that_loses_its_first_sigint_is_stopped_by_the_second() {
        // Like bpftrace 0.17 when SIGINT comes before its event loop.
        let c = sh("trap 'trap - INT' INT; while :; do sleep 0.02; done");
        let t = Instant::now();
        let r = stop_within(c, "lossy", true, Duration::from_millis(500));
        assert!(r.is_ok(), "{r:?}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[test]
    fn a_tracer_that_ignores_sigint_is_killed_and_its_run_fails() {
        let c = sh("trap '' INT; while :; do sleep 0.02; done");
        let id = c.id();
        let e = stop_within(c, "stubborn", true, Duration::from_millis(300)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stubborn did not exit within 0.6 s of being told to stop (SIGINT twice); killed"
        );
        // Reaped: no such process any more.
        assert!(!Path::new(&format!("/proc/{id}")).exists());
    }

    #[test]
    fn a_tracer_that_exits_by_itself_is_reaped_with_its_cpu_time() {
        let c = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let (cpu, rss) = stop_within(c, "ours", false, Duration::from_secs(30)).unwrap();
        assert!(cpu > 0.0 && cpu < 30.0, "{cpu}");
        assert!(rss > 0.1 && rss < 1000.0, "{rss}");
    }

    #[test]
    fn a_peer_that_exits_before_attaching_fails_with_its_own_words() {
        let log = std::env::temp_dir().join(format!("bench-peer-{}.txt", std::process::id()));
        let mut c = Command::new("sh")
            .args(["-c", "echo 'ERROR: no such probe' >&2; exit 3"])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let e = wait_attached(&mut c, Config::Bpftrace, &log).unwrap_err();
        let _ = std::fs::remove_file(&log);
        let e = e.to_string();
        assert!(
            e.starts_with("bpftrace (switch stacks + syscall latency) exited early"),
            "{e}"
        );
        assert!(e.ends_with("ERROR: no such probe"), "{e}");
    }

    #[test]
    fn waiting_for_a_line_that_never_comes_is_bounded() {
        let mut c = Command::new("sh")
            .args(["-c", "echo ready 1; exec sleep 5"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Lines::of(c.stdout.take().unwrap());
        assert_eq!(
            out.next_within(Duration::from_secs(5), "a").unwrap(),
            "ready 1"
        );
        let t = Instant::now();
        let e = out
            .next_within(Duration::from_millis(300), "result line")
            .unwrap_err();
        assert_eq!(e.to_string(), "no result line within 0.3 s");
        assert!(t.elapsed() < Duration::from_secs(3));
        let _ = c.kill();
        let _ = c.wait();
        let e = out
            .next_within(Duration::from_secs(5), "result line")
            .unwrap_err();
        assert_eq!(e.to_string(), "output closed before a result line");
    }

    #[test]
    fn the_value_after_a_key_is_read_from_a_cut_off_profile() {
        let head = r#"{"totals": {"lost_events": 7}, "lost": {"ringbuf_full": 0, "stacks": 7}, "threads": [{"tid": 1, "na"#;
        let lost = json_after(head, "\"lost\":").unwrap();
        assert_eq!(lost["stacks"], 7);
        assert_eq!(lost.as_object().unwrap().len(), 2);
        assert_eq!(number_after(head, "\"lost_events\":"), Some(7));
        assert!(json_after(head, "\"threads\":").is_none());
        assert!(json_after(head, "\"absent\":").is_none());
    }
}

//! Command line: clap definitions, dispatch, and the mapping of errors to
//! exit codes (see [`crate::error::exit`]). `main` only calls [`main`].

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::{
    diff::budget,
    error::{Error, exit},
    kernel, load, output,
    profile::Profile,
    render,
    render::{
        Json, Renderer,
        flame::FlameOptions,
        text::{SortBy, TextOptions},
    },
    session::{self, Observer, Progress},
    spawn::ExitInfo,
};

const EXAMPLES: &str = "\
Examples:
  sudo profiler attach --pid 4242 --duration 10s --output out/
  sudo profiler attach --pid 4242 --json > profile.json
  sudo profiler record --output out/ -- ./my-benchmark --iterations 1000";

#[derive(Debug, Parser)]
#[command(
    name = "profiler",
    version,
    about = "eBPF profiler for the threads of a Linux process",
    long_about = "Attaches to a running process (or starts a command) without touching it and \
                  reports what each of its OS threads did: when it was born and died, how long it \
                  ran, waited for a CPU, slept or blocked, in which syscalls, and where: on-CPU and \
                  off-CPU flamegraphs.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record a running process until --duration passes, Ctrl-C, or it exits.
    #[command(after_help = EXAMPLES)]
    Attach(AttachArgs),
    /// Start a command and record it from its first instruction until it exits.
    #[command(after_help = EXAMPLES)]
    Record(RecordArgs),
    /// Render every output again from a saved profile.json (no root needed).
    #[command(after_help = "Example:\n  profiler report out/profile.json --output again/")]
    Report(ReportArgs),
    /// Compare profiles of a base and a new build; exit 1 on a regression.
    #[command(after_help = DIFF_HELP)]
    Diff(DiffArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), as `cargo xtask man` installs it.
    #[command(hide = true)]
    Man,
}

const DIFF_HELP: &str = "\
Metrics: wall, on_cpu, off_cpu, runnable, sleeping, blocked, threads_seen,
threads_created, context_switches, switches.voluntary, switches.involuntary,
syscall.NAME.time, syscall.NAME.count, role.ROLE.time, func.NAME.self,
func.NAME.total, offcpu.NAME.total. A trailing * matches a family.

Default budgets (when none are given): on_cpu=10% wall=10% runnable=25%
blocked=25% context_switches=25% threads_created=0.

Exit codes: 0 no regression beyond budget, 1 regression, 2 bad usage or
unreadable input.

Examples:
  profiler diff base/profile.json new/profile.json
  profiler diff --base b1.json b2.json b3.json --new n1.json n2.json n3.json \\
      --max-increase on_cpu=5% --max-increase threads_created=0 --markdown summary.md
  profiler diff --base base-runs/ --new new-runs/ --budget perf-budget.toml --output diff/";

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A profile.json written by attach or record.
    pub profile: PathBuf,
    /// Directory for report.txt, flamegraphs and folded stacks.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Print the profile as JSON instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Flamegraphs without a root frame per thread.
    #[arg(long)]
    pub merge_threads: bool,
    /// Order of the thread table.
    #[arg(long, value_enum, default_value_t = SortBy::Cpu)]
    pub sort: SortBy,
    /// No messages on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Overwrite an output directory that already holds a profile.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// BASE NEW: two profiles (or directories of profiles).
    #[arg(num_args = 0..=2, value_name = "BASE NEW")]
    pub pair: Vec<PathBuf>,
    /// Base runs: profiles or directories (instead of BASE).
    #[arg(long, num_args = 1.., value_name = "PROFILE")]
    pub base: Vec<PathBuf>,
    /// New runs: profiles or directories (instead of NEW).
    #[arg(long, num_args = 1.., value_name = "PROFILE")]
    pub new: Vec<PathBuf>,
    /// METRIC=LIMIT, e.g. on_cpu=5%, threads_created=0, syscall.read.time=10ms.
    #[arg(long = "max-increase", value_name = "METRIC=LIMIT")]
    pub max_increase: Vec<String>,
    /// Budget file (TOML or JSON) with a max_increase table.
    #[arg(long)]
    pub budget: Option<PathBuf>,
    /// Significance level of the noise test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Write a Markdown summary (for a PR comment or $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the comparison as JSON.
    #[arg(long = "json", value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Directory for differential flamegraphs (diff-oncpu.svg, diff-offcpu.svg).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// Options shared by `attach` and `record`.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// How long to record: 500ms, 10s, 2m, or plain seconds. Default: until
    /// Ctrl-C or the target exits.
    #[arg(long, short = 'd', value_parser = crate::duration::parse, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Directory for report.txt, profile.json, flamegraphs and folded stacks
    /// (created if missing).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Print profile.json to stdout instead of the report.
    #[arg(long)]
    pub json: bool,
    /// On-CPU sampling frequency in Hz (1-10000).
    #[arg(long, short = 'F', default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub freq: u64,
    /// No stacks: no flamegraphs, no creation stacks; lowest overhead.
    #[arg(long)]
    pub no_stacks: bool,
    /// Flamegraphs without a root frame per thread.
    #[arg(long)]
    pub merge_threads: bool,
    /// Order of the thread table.
    #[arg(long, value_enum, default_value_t = SortBy::Cpu)]
    pub sort: SortBy,
    /// No progress messages on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Log what profiler does to stderr (-v: steps and timings, -vv: every
    /// thread seeded and every mapping captured).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Overwrite an output directory that already holds a profile.
    #[arg(long)]
    pub force: bool,
    /// Record every state change of every thread: timeline.svg and
    /// trace.json (Perfetto). Costs a ring-buffer record per switch.
    #[arg(long)]
    pub timeline: bool,
    /// Measure what the profiler's own kernel programs cost (calls, time
    /// per call, share of the machine's CPU) with the kernel's BPF run-time
    /// statistics, which add two clock reads to every call; shown in the
    /// report and saved in profile.json.
    #[arg(long)]
    pub measure_overhead: bool,
    /// Most timeline segments kept; later ones are counted and dropped.
    #[arg(long, default_value_t = 1_000_000)]
    pub timeline_max: usize,
    /// Most threads traced at once (kernel map size); threads beyond it are
    /// counted as lost.
    #[arg(long, default_value_t = 32768, value_parser = clap::value_parser!(u32).range(1..=4_194_304))]
    pub max_threads: u32,
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Process id to record (a process, not one of its threads).
    #[arg(long, short = 'p', allow_negative_numbers = true)]
    pub pid: i64,
    /// Also trace child processes the target forks during the recording.
    #[arg(long)]
    pub follow_children: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Do not trace the processes the command forks.
    #[arg(long)]
    pub no_follow_children: bool,
    /// Exit 0 whatever the command's exit status (default: exit with it).
    #[arg(long)]
    pub ignore_exit_status: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// Parses arguments, runs, prints errors; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("profiler: error: {e:#}");
            e.downcast_ref::<Error>()
                .map(Error::exit_code)
                .unwrap_or(exit::FAILURE)
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    refuse_setuid()?;
    match cli.command {
        Command::Attach(a) => attach(a),
        Command::Record(r) => record(r),
        Command::Report(r) => report(r),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "profiler", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(exit::OK)
        }
        // Whatever goes wrong in diff is exit 2, never 1 (= regression).
        Command::Diff(d) => diff(d).map_err(|e| {
            if e.downcast_ref::<Error>().is_some() {
                e
            } else {
                Error::Input(format!("{e:#}")).into()
            }
        }),
    }
}

/// Prints the readiness line (tests wait for it) and, on a terminal, a
/// live status line a few times a second.
struct Stderr {
    quiet: bool,
    live: bool,
    last: Option<(std::time::Instant, u64)>,
}

impl Stderr {
    fn new(quiet: bool) -> Self {
        Stderr {
            quiet,
            live: !quiet && std::io::stderr().is_terminal(),
            last: None,
        }
    }

    /// Ends the status line.
    fn done(&mut self) {
        if self.live && self.last.is_some() {
            eprintln!();
        }
    }
}

impl Observer for Stderr {
    fn started(&mut self, pid: u32, comm: &str, threads: usize) {
        if !self.quiet {
            eprintln!("profiler: recording pid {pid} ({comm}), {threads} threads; Ctrl-C to stop");
        }
    }
    fn wants_progress(&self) -> bool {
        self.live
    }
    fn progress(&mut self, p: Progress) {
        let now = std::time::Instant::now();
        let rate = match self.last {
            Some((t, _)) if now.duration_since(t) < std::time::Duration::from_millis(250) => return,
            Some((t, e)) => {
                (p.events.saturating_sub(e)) as f64 / now.duration_since(t).as_secs_f64()
            }
            None => 0.0,
        };
        self.last = Some((now, p.events));
        let lost = if p.lost > 0 {
            format!(" · \x1b[1;31m{} lost\x1b[0m", p.lost)
        } else {
            " · 0 lost".into()
        };
        eprint!(
            "\r\x1b[2K  {:.1}s · {:.0} events/s · {} threads{lost}",
            p.elapsed.as_secs_f64(),
            rate,
            p.threads
        );
    }
}

/// The first SIGINT/SIGTERM sets the flag (stop, write everything); a
/// second one exits at once (130/143): files are only ever renamed into
/// place complete, so what is there stays consistent.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, code) in [
        (signal_hook::consts::SIGINT, 130),
        (signal_hook::consts::SIGTERM, 143),
    ] {
        signal_hook::flag::register_conditional_shutdown(sig, code, Arc::clone(&stop))
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

/// profiler loads kernel programs as root: it must not be a setuid or
/// setgid door for other users.
fn refuse_setuid() -> Result<(), Error> {
    // SAFETY: trivial syscalls.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if uid != euid || gid != egid {
        return Err(Error::Privilege(format!(
            "profiler refuses to run setuid/setgid (uid {uid}, effective uid {euid}): it loads kernel \
             programs and reads other processes' memory, so it must be run by root itself, e.g. with sudo"
        )));
    }
    Ok(())
}

fn session_options(c: &CommonArgs, follow_children: bool) -> session::Options {
    session::Options {
        duration: c.duration,
        kernel: kernel::Options {
            follow_children,
            stacks: !c.no_stacks,
            freq_hz: if c.no_stacks { 0 } else { c.freq },
            max_threads: c.max_threads,
            timeline: c.timeline,
            measure_overhead: c.measure_overhead,
            ..kernel::Options::default()
        },
        timeline_max: c.timeline_max,
        verbose: c.verbose,
    }
}

fn attach(a: AttachArgs) -> Result<i32> {
    if let Some(dir) = &a.common.output {
        output::prepare_dir(dir, a.common.force)?;
    }
    let stop = stop_flag()?;
    let opts = session_options(&a.common, a.follow_children);
    let mut obs = Stderr::new(a.common.quiet);
    let profile = session::attach(a.pid, &opts, &stop, &mut obs);
    obs.done();
    let profile = profile?;
    emit(&profile, &(&a.common).into())?;
    Ok(exit::OK)
}

fn record(r: RecordArgs) -> Result<i32> {
    if let Some(dir) = &r.common.output {
        output::prepare_dir(dir, r.common.force)?;
    }
    let stop = stop_flag()?;
    let opts = session_options(&r.common, !r.no_follow_children);
    let mut obs = Stderr::new(r.common.quiet);
    let rec = session::record(&r.cmd, &opts, &stop, &mut obs);
    obs.done();
    let rec = rec?;
    emit(&rec.profile, &(&r.common).into())?;
    let code = rec.exit.map(|e| e.shell_code()).unwrap_or(exit::FAILURE);
    if !r.common.quiet {
        match rec.exit {
            Some(ExitInfo::Code(c)) => eprintln!("profiler: {} exited with status {c}", r.cmd[0]),
            Some(ExitInfo::Signal(s)) => {
                eprintln!("profiler: {} was killed by signal {s}", r.cmd[0])
            }
            None => eprintln!("profiler: could not get the exit status of {}", r.cmd[0]),
        }
    }
    Ok(if r.ignore_exit_status { exit::OK } else { code })
}

/// How results are written.
struct EmitOpts<'a> {
    output: Option<&'a std::path::Path>,
    json: bool,
    merge_threads: bool,
    sort: SortBy,
    quiet: bool,
}

impl<'a> From<&'a CommonArgs> for EmitOpts<'a> {
    fn from(c: &'a CommonArgs) -> Self {
        EmitOpts {
            output: c.output.as_deref(),
            json: c.json,
            merge_threads: c.merge_threads,
            sort: c.sort,
            quiet: c.quiet,
        }
    }
}

/// Every file `--output` gets.
fn renderers(c: &EmitOpts) -> Vec<Box<dyn Renderer>> {
    let text = TextOptions {
        sort: c.sort,
        ..TextOptions::default()
    };
    let flame = FlameOptions {
        merge_threads: c.merge_threads,
    };
    render::all(text, flame)
}

/// Writes every file to `dir`, rendering one at a time (a timeline makes
/// files of hundreds of MB); on failure, everything to a rescue directory,
/// and the error names both.
fn write_all(profile: &Profile, c: &EmitOpts, dir: &std::path::Path) -> Result<Vec<&'static str>> {
    let renderers: Vec<Box<dyn Renderer>> = renderers(c)
        .into_iter()
        .filter(|r| r.applies(profile))
        .collect();
    let mut written = Vec::new();
    let mut failure = None;
    for r in &renderers {
        // A rendering error is not the disk's fault: it is returned as is,
        // not rescued (the same renderer would fail again). A write error
        // while streaming (disk full...) is the disk's, and is rescued.
        let mut render_err = None;
        let wrote = output::write_file_with(dir, r.file_name(), |w| {
            r.render_to(profile, w).map_err(|e| {
                let from_disk = e.downcast_ref::<std::io::Error>().is_some()
                    || e.downcast_ref::<serde_json::Error>()
                        .is_some_and(|j| j.is_io());
                let io = std::io::Error::other(format!("{e:#}"));
                if !from_disk {
                    render_err = Some(e);
                }
                io
            })
        });
        if let Some(e) = render_err {
            return Err(e);
        }
        if let Err(e) = wrote {
            failure = Some(format!(
                "writing {}: {e}",
                dir.join(r.file_name()).display()
            ));
            break;
        }
        written.push(r.file_name());
    }
    let Some(why) = failure else {
        return Ok(written);
    };
    let rescued = output::rescue_dir().and_then(|rd| {
        for r in &renderers {
            let bytes = r.render(profile).map_err(std::io::Error::other)?;
            output::write_file(&rd, r.file_name(), &bytes)?;
        }
        Ok(rd)
    });
    Err(match rescued {
        Ok(r) => Error::Output {
            path: dir.to_path_buf(),
            reason: format!("{why}; the recording was saved in {} instead", r.display()),
        },
        Err(e) => Error::Output {
            path: dir.to_path_buf(),
            reason: format!("{why}; saving it in the temp dir failed too ({e})"),
        },
    }
    .into())
}

/// Writes the files and prints the report or JSON.
fn emit(profile: &Profile, c: &EmitOpts) -> Result<()> {
    let mut written = Vec::new();
    if let Some(dir) = c.output {
        written = write_all(profile, c, dir)?;
    }
    let mut stdout = std::io::stdout().lock();
    if c.json {
        stdout.write_all(&Json.render(profile)?)?;
    } else {
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let opts = TextOptions {
            color,
            sort: c.sort,
            ..TextOptions::default()
        };
        stdout.write_all(crate::render::text::report(profile, &opts).as_bytes())?;
    }
    stdout.flush()?;
    if let Some(dir) = c.output
        && !c.quiet
    {
        eprintln!(
            "profiler: wrote {} in {}",
            written.join(", "),
            dir.display()
        );
    }
    Ok(())
}

fn report(r: ReportArgs) -> Result<i32> {
    let profile = load::load(&r.profile).map_err(|e| Error::Input(e.to_string()))?;
    if let Some(dir) = &r.output {
        output::prepare_dir(dir, r.force)?;
    }
    emit(
        &profile,
        &EmitOpts {
            output: r.output.as_deref(),
            json: r.json,
            merge_threads: r.merge_threads,
            sort: r.sort,
            quiet: r.quiet,
        },
    )?;
    Ok(exit::OK)
}

fn load_all(paths: &[PathBuf], side: &str) -> Result<Vec<Profile>, Error> {
    let files = load::expand(paths).map_err(|e| Error::Input(e.to_string()))?;
    if files.is_empty() {
        return Err(Error::Input(format!("no {side} profiles given")));
    }
    files
        .iter()
        .map(|f| load::load(f).map_err(|e| Error::Input(e.to_string())))
        .collect()
}

fn diff(d: DiffArgs) -> Result<i32> {
    // Anything wrong here is bad usage or input: exit 2.
    let input = |e: String| anyhow::Error::from(Error::Input(e));
    let (base_paths, new_paths) = match (d.pair.len(), d.base.is_empty(), d.new.is_empty()) {
        (2, true, true) => (vec![d.pair[0].clone()], vec![d.pair[1].clone()]),
        (0, false, false) => (d.base.clone(), d.new.clone()),
        _ => {
            return Err(Error::Usage(
                "diff: give BASE NEW, or --base PROFILE... --new PROFILE...".into(),
            )
            .into());
        }
    };
    if !(d.alpha > 0.0 && d.alpha < 1.0) {
        return Err(Error::Usage(format!(
            "invalid --alpha {}: must be between 0 and 1",
            d.alpha
        ))
        .into());
    }
    let base = load_all(&base_paths, "base")?;
    let new = load_all(&new_paths, "new")?;
    let mut budgets = match &d.budget {
        Some(f) => budget::Budgets::from_file(f).map_err(input)?,
        None if d.max_increase.is_empty() => budget::Budgets::defaults(),
        None => budget::Budgets::default(),
    };
    for flag in &d.max_increase {
        budgets.add_flag(flag).map_err(input)?;
    }
    let result = crate::diff::compare(&base, &new, &budgets, d.alpha);
    let write = |path: &std::path::Path, text: &str| -> Result<()> {
        std::fs::write(path, text)
            .map_err(|e| input(format!("cannot write {}: {e}", path.display())))
    };
    if let Some(md) = &d.markdown {
        write(md, &render::diff::markdown(&result))?;
    }
    if let Some(js) = &d.json_out {
        write(js, &render::diff::json(&result)?)?;
    }
    if let Some(dir) = &d.output {
        output::prepare_dir(dir, true).map_err(|e| input(e.to_string()))?;
        for (name, on) in [("diff-oncpu.svg", true), ("diff-offcpu.svg", false)] {
            let svg = render::flame::differential_svg(&base, &new, on)?;
            output::write_file(dir, name, &svg)
                .map_err(|e| input(format!("cannot write {name}: {e}")))?;
        }
    }
    print!("{}", render::diff::text(&result));
    Ok(if result.regressed {
        exit::REGRESSION
    } else {
        exit::OK
    })
}

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
    error::{Error, exit},
    kernel, output,
    profile::Profile,
    render::{
        Json, Renderer,
        flame::{FlameOptions, OffCpuFolded, OffCpuSvg, OnCpuFolded, OnCpuSvg},
        text::{SortBy, Text, TextOptions},
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
    match cli.command {
        Command::Attach(a) => attach(a),
        Command::Record(r) => record(r),
    }
}

/// Prints the readiness line (tests wait for it).
struct Stderr {
    quiet: bool,
}

impl Observer for Stderr {
    fn started(&mut self, pid: u32, comm: &str, threads: usize) {
        if !self.quiet {
            eprintln!("profiler: recording pid {pid} ({comm}), {threads} threads; Ctrl-C to stop");
        }
    }
    fn progress(&mut self, _p: Progress) {}
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

fn session_options(c: &CommonArgs, follow_children: bool) -> session::Options {
    session::Options {
        duration: c.duration,
        kernel: kernel::Options {
            follow_children,
            stacks: !c.no_stacks,
            freq_hz: if c.no_stacks { 0 } else { c.freq },
            ..kernel::Options::default()
        },
    }
}

fn attach(a: AttachArgs) -> Result<i32> {
    if let Some(dir) = &a.common.output {
        output::prepare_dir(dir)?;
    }
    let stop = stop_flag()?;
    let opts = session_options(&a.common, a.follow_children);
    let profile = session::attach(
        a.pid,
        &opts,
        &stop,
        &mut Stderr {
            quiet: a.common.quiet,
        },
    )?;
    emit(&profile, &a.common)?;
    Ok(exit::OK)
}

fn record(r: RecordArgs) -> Result<i32> {
    if let Some(dir) = &r.common.output {
        output::prepare_dir(dir)?;
    }
    let stop = stop_flag()?;
    let opts = session_options(&r.common, !r.no_follow_children);
    let rec = session::record(
        &r.cmd,
        &opts,
        &stop,
        &mut Stderr {
            quiet: r.common.quiet,
        },
    )?;
    emit(&rec.profile, &r.common)?;
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

/// Every file `--output` gets.
fn renderers(c: &CommonArgs) -> Vec<Box<dyn Renderer>> {
    let text = TextOptions {
        sort: c.sort,
        ..TextOptions::default()
    };
    let flame = FlameOptions {
        merge_threads: c.merge_threads,
    };
    vec![
        Box::new(Json),
        Box::new(Text(text)),
        Box::new(OnCpuFolded(flame.clone())),
        Box::new(OffCpuFolded(flame.clone())),
        Box::new(OnCpuSvg(flame.clone())),
        Box::new(OffCpuSvg(flame)),
    ]
}

/// Writes the files and prints the report or JSON.
fn emit(profile: &Profile, c: &CommonArgs) -> Result<()> {
    let mut written = Vec::new();
    if let Some(dir) = &c.output {
        for r in renderers(c) {
            let bytes = r.render(profile)?;
            output::write_file(dir, r.file_name(), &bytes)
                .with_context(|| format!("writing {}", dir.join(r.file_name()).display()))?;
            written.push(r.file_name());
        }
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
    if let Some(dir) = &c.output
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

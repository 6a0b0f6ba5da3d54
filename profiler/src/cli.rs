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
        text::{SortBy, Text, TextOptions},
    },
    session::{self, Observer, Progress},
    target::Process,
};

const EXAMPLES: &str = "\
Examples:
  sudo profiler attach --pid 4242 --duration 10s --output out/
  sudo profiler attach --pid 4242 --json > profile.json";

#[derive(Debug, Parser)]
#[command(
    name = "profiler",
    version,
    about = "eBPF profiler for the threads of a Linux process",
    long_about = "Attaches to a running process without touching it and reports what each of its \
                  OS threads did: when it was born and died, how long it ran, waited for a CPU, \
                  slept or blocked, and in which syscalls.",
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
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Process id to record (a process, not one of its threads).
    #[arg(long, short = 'p', allow_negative_numbers = true)]
    pub pid: i64,
    /// How long to record: 500ms, 10s, 2m, or plain seconds. Default: until
    /// Ctrl-C or the target exits.
    #[arg(long, short = 'd', value_parser = crate::duration::parse, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Directory for report.txt and profile.json (created if missing).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Print profile.json to stdout instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Also trace child processes the target forks during the recording.
    #[arg(long)]
    pub follow_children: bool,
    /// Order of the thread table.
    #[arg(long, value_enum, default_value_t = SortBy::Cpu)]
    pub sort: SortBy,
    /// No progress messages on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
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
    }
}

/// Prints the readiness line (tests wait for it) and nothing else yet.
struct Stderr {
    quiet: bool,
}

impl Observer for Stderr {
    fn started(&mut self, target: &Process, threads: usize) {
        if !self.quiet {
            eprintln!(
                "profiler: recording pid {} ({}), {} threads; Ctrl-C to stop",
                target.pid, target.comm, threads
            );
        }
    }
    fn progress(&mut self, _p: Progress) {}
}

fn attach(a: AttachArgs) -> Result<i32> {
    if let Some(dir) = &a.output {
        output::prepare_dir(dir)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let opts = session::Options {
        pid: a.pid,
        duration: a.duration,
        kernel: kernel::Options {
            follow_children: a.follow_children,
            ..kernel::Options::default()
        },
    };
    let profile = session::record(&opts, &stop, &mut Stderr { quiet: a.quiet })?;
    emit(&profile, &a)
}

/// Writes the files and prints the report or JSON.
fn emit(profile: &Profile, a: &AttachArgs) -> Result<i32> {
    let text_opts = TextOptions {
        sort: a.sort,
        ..TextOptions::default()
    };
    if let Some(dir) = &a.output {
        let renderers: Vec<Box<dyn Renderer>> =
            vec![Box::new(Json), Box::new(Text(text_opts.clone()))];
        for r in renderers {
            let bytes = r.render(profile)?;
            output::write_file(dir, r.file_name(), &bytes)
                .with_context(|| format!("writing {}", dir.join(r.file_name()).display()))?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    if a.json {
        stdout.write_all(&Json.render(profile)?)?;
    } else {
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let report = crate::render::text::report(profile, &TextOptions { color, ..text_opts });
        stdout.write_all(report.as_bytes())?;
    }
    stdout.flush()?;
    if let Some(dir) = &a.output
        && !a.quiet
    {
        eprintln!(
            "profiler: wrote {}/{{report.txt,profile.json}}",
            dir.display()
        );
    }
    Ok(exit::OK)
}

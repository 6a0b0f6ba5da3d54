//! `cargo xtask <command>`: what a newcomer runs.
//!
//! - `setup`: makes the eBPF build possible (nightly + rust-src, bpf-linker
//!   built against the nightly's own LLVM); idempotent and quick when done.
//! - `demo`: setup, build, profile the bundled demo program, print the report.
//! - `test`: setup, lints, every test (privileged end-to-end ones included),
//!   then the demo and the bench in smoke mode.
//! - `bench`: overhead against untraced runs and peer tools.

mod bench;
mod demo;
mod setup;
mod test;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the eBPF build needs (nightly rust-src, bpf-linker).
    Setup,
    /// Profile the bundled demo program and print the report.
    Demo,
    /// Overhead benchmark against untraced runs and peer tools.
    Bench {
        /// One short repetition of each configuration (CI).
        #[arg(long)]
        smoke: bool,
        /// Repetitions per configuration.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Write the man page to target/man/profiler.1.
    Man,
    /// Run lints and every test, privileged end-to-end tests included.
    Test {
        /// Skip fmt/clippy.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let r: Result<()> = match cli.cmd {
        Cmd::Setup => setup::run().map(|_| ()),
        Cmd::Demo => setup::run().and_then(|_| demo::run()),
        Cmd::Man => setup::run().and_then(|_| man()),
        Cmd::Bench {
            smoke,
            reps,
            seconds,
        } => setup::run().and_then(|_| bench::run(smoke, reps, seconds)),
        Cmd::Test {
            no_lint,
            cargo_args,
        } => setup::run().and_then(|_| test::run(!no_lint, &cargo_args)),
    };
    if let Err(e) = r {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

/// `cargo xtask man`: the man page, generated from the clap definitions.
fn man() -> Result<()> {
    let out = util::cargo()
        .args(["run", "--quiet", "-p", "profiler", "--", "man"])
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "profiler man failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = util::root().join("target/man");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("profiler.1"), &out.stdout)?;
    eprintln!("xtask: wrote {}", dir.join("profiler.1").display());
    Ok(())
}

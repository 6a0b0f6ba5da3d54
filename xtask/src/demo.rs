//! `cargo xtask demo`: profiles the bundled `lifecycle` program (named
//! threads that sleep, block on a pipe, burn CPU, and come and go) for two
//! seconds and prints the report; files go to `target/demo/`.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::util::{cargo, is_root, root, sh};

pub fn run_demo() -> Result<()> {
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "profiler",
        "-p",
        "profiler-tests",
        "--bins",
    ]))?;
    let bin = root().join("target/release");
    let mut target = Command::new(bin.join("lifecycle"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo program")?;
    let mut lines = BufReader::new(target.stdout.take().context("demo stdout")?).lines();
    let ready = lines.next().context("demo program printed nothing")??;
    if !ready.starts_with("ready") {
        bail!("demo program said {ready:?}");
    }
    let out = root().join("target/demo");
    let mut cmd = if is_root() {
        Command::new(bin.join("profiler"))
    } else {
        eprintln!("xtask: profiler needs root; using sudo");
        let mut c = Command::new("sudo");
        c.arg(bin.join("profiler"));
        c
    };
    cmd.args([
        "attach",
        "--pid",
        &target.id().to_string(),
        "--duration",
        "2s",
        // The demo's own directory: overwrite the last run's files.
        "--force",
        "--output",
    ])
    .arg(&out)
    .stderr(Stdio::piped());
    let mut prof = cmd.spawn().context("starting profiler")?;
    // Start the work once the profiler records.
    let mut err = BufReader::new(prof.stderr.take().context("profiler stderr")?).lines();
    let mut said = String::new();
    for line in err.by_ref() {
        let line = line?;
        eprintln!("{line}");
        said.push_str(&line);
        if line.contains("recording pid") {
            break;
        }
    }
    if let Some(stdin) = target.stdin.as_mut() {
        let _ = writeln!(stdin, "loop 4");
    }
    for line in err {
        eprintln!("{}", line?);
    }
    let status = prof.wait()?;
    let _ = target.kill();
    let _ = target.wait();
    if !status.success() {
        bail!("profiler failed ({status}): {said}");
    }
    Ok(())
}

pub fn run() -> Result<()> {
    run_demo().context("demo")
}

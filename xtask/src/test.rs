//! `cargo xtask test`: lints, every test (as root the privileged end-to-end
//! tests load real eBPF programs), then the demo.

use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{cargo, is_root, sh};

fn lint() -> Result<()> {
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    sh(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    // The eBPF crate only builds for the BPF target, with nightly.
    let mut c = Command::new("cargo");
    c.current_dir(crate::util::root())
        .args([
            "+nightly",
            "clippy",
            "-p",
            "profiler-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--bins",
            "--",
            "-D",
            "warnings",
        ])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "--cfg=bpf_target_arch=\"x86_64\"\u{1f}-Cdebuginfo=2\u{1f}-Clink-arg=--btf",
        )
        .env(
            "CARGO_TARGET_DIR",
            crate::util::root().join("target/ebpf-clippy"),
        );
    sh(&mut c)
}

pub fn run_tests(lints: bool, extra: &[String]) -> Result<()> {
    if !is_root() {
        bail!(
            "the end-to-end tests load eBPF programs: run `cargo xtask test` as root (e.g. with sudo -E)"
        );
    }
    if lints {
        lint()?;
    }
    // Builds every binary the end-to-end tests run (profiler, fixtures).
    sh(cargo().args([
        "build",
        "--workspace",
        "--exclude",
        "profiler-ebpf",
        "--bins",
    ]))?;
    let mut c = cargo();
    c.args([
        "test",
        "--workspace",
        "--exclude",
        "profiler-ebpf",
        "--no-fail-fast",
    ]);
    if !extra.is_empty() {
        c.arg("--").args(extra);
    }
    sh(&mut c)?;
    eprintln!("xtask: running the demo as a smoke test");
    crate::demo::run()?;
    eprintln!("xtask: running the bench in smoke mode (so it does not rot)");
    crate::bench::run(true, 1, 0.3)
}

pub fn run(lints: bool, extra: &[String]) -> Result<()> {
    run_tests(lints, extra)
}

//! `cargo xtask setup`: the eBPF toolchain, installed once in lasting places
//! and checked each time (a quick no-op when already done).
//!
//! - the nightly toolchain with `rust-src` (`-Z build-std=core` for the BPF
//!   target) and clippy (to lint the eBPF crate);
//! - `bpf-linker`, built against the nightly's own libLLVM so both use the
//!   same LLVM: `$CARGO_HOME/profiler-llvm/lib` holds symlinks to that
//!   library (it must outlive the build: the linker keeps an rpath to it),
//!   and a stamp records which nightly it was built for.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

use crate::util::{capture, sh};

/// bpf-linker release known to build and work here.
const BPF_LINKER_VERSION: &str = "0.13.0";

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

fn stdout_of(cmd: &mut Command) -> Option<String> {
    let o = capture(cmd)?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn ensure_nightly() -> Result<()> {
    let toolchains = stdout_of(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup not found: install Rust with rustup (https://rustup.rs)")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
            "--component",
            "clippy",
        ]))
        .context("installing the nightly toolchain (needed to build the eBPF programs)")?;
    }
    let installed = stdout_of(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    for comp in ["rust-src", "clippy"] {
        if !installed.lines().any(|l| l.starts_with(comp)) {
            sh(Command::new("rustup").args(["component", "add", comp, "--toolchain", "nightly"]))
                .with_context(|| format!("adding {comp} to the nightly toolchain"))?;
        }
    }
    Ok(())
}

/// (LLVM major, nightly identity, libLLVM path) of the nightly toolchain.
fn nightly_llvm() -> Result<(String, String, PathBuf)> {
    let vv = stdout_of(Command::new("rustc").args(["+nightly", "-vV"]))
        .context("`rustc +nightly -vV` failed: the nightly toolchain is not usable")?;
    let llvm = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` prints no LLVM version")?
        .trim()
        .to_string();
    let major = llvm.split('.').next().unwrap_or_default().to_string();
    let sysroot = stdout_of(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("`rustc +nightly --print sysroot` failed")?;
    let lib = PathBuf::from(sysroot.trim()).join("lib");
    let mut candidates: Vec<PathBuf> = fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM") && n.contains(".so"))
        })
        .collect();
    // Prefer libLLVM.so.<ver>-rust-<ver>-nightly, the SONAME.
    candidates.sort_by_key(|p| {
        !p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libLLVM.so."))
    });
    let libllvm = candidates
        .into_iter()
        .next()
        .with_context(|| format!("no libLLVM shared library in {}", lib.display()))?;
    Ok((major, vv, libllvm))
}

fn ensure_bpf_linker() -> Result<()> {
    let (major, identity, libllvm) = nightly_llvm()?;
    let prefix = cargo_home().join("profiler-llvm");
    let stamp_path = prefix.join("stamp");
    let stamp = format!("bpf-linker {BPF_LINKER_VERSION} llvm-{major}\n{identity}");
    let works = stdout_of(Command::new("bpf-linker").arg("--version")).is_some();
    if works && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let name = libllvm
        .file_name()
        .context("libLLVM path has no file name")?
        .to_owned();
    for link in [lib.join("libLLVM.so"), lib.join(&name)] {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), libllvm.display()))?;
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {major} (one time, ~2 min)"
    );
    sh(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--force",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .env("LLVM_PREFIX", &prefix))
    .context("building bpf-linker (needs crates.io and gcc)")?;
    if stdout_of(Command::new("bpf-linker").arg("--version")).is_none() {
        bail!(
            "bpf-linker was installed but does not run; is {} on PATH?",
            cargo_home().join("bin").display()
        );
    }
    fs::write(&stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(())
}

/// Go, for the Go fixtures of the end-to-end tests (Debian's golang-go).
fn ensure_go() -> Result<()> {
    if stdout_of(Command::new("go").arg("version")).is_some() {
        return Ok(());
    }
    if !crate::util::is_root() {
        bail!(
            "Go is missing (needed by the Go test fixtures): install Debian's golang-go, or run as root and xtask will"
        );
    }
    eprintln!("xtask: installing golang-go (Go test fixtures)");
    sh(Command::new("apt-get").args(["update", "-qq"])).context("apt-get update")?;
    sh(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "golang-go",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("installing golang-go")?;
    if stdout_of(Command::new("go").arg("version")).is_none() {
        bail!("golang-go was installed but `go version` does not run");
    }
    Ok(())
}

/// A Debian package providing `bin`, installed when missing (as root).
fn ensure_apt(bin: &str, package: &str, why: &str) -> Result<()> {
    if Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    if !crate::util::is_root() {
        bail!(
            "{bin} is missing ({why}): install Debian's {package}, or run as root and xtask will"
        );
    }
    eprintln!("xtask: installing {package} ({why})");
    let _ = sh(Command::new("apt-get").args(["update", "-qq"]));
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {package}"))
}

/// Everything; returns quickly when already set up.
pub fn run_setup() -> Result<()> {
    ensure_nightly()?;
    ensure_bpf_linker()?;
    ensure_go()?;
    ensure_apt(
        "chromium",
        "chromium",
        "headless screenshots of the SVGs in the tests",
    )?;
    Ok(())
}

pub fn run() -> Result<()> {
    run_setup().context("setup")?;
    eprintln!("xtask: setup ok (nightly rust-src, bpf-linker, go, chromium)");
    Ok(())
}

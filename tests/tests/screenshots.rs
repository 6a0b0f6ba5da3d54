//! The SVGs as a person sees them: rendered by headless Chromium (Debian's
//! chromium, installed by `cargo xtask setup`), which must load them
//! without error, show the expected text, and paint a real picture.

use std::{fs, path::Path, process::Command};

use profiler_tests::{require_root, run_profiler, scratch};

fn chromium(args: &[&str], page: &Path, profile_dir: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (cargo xtask setup installs Debian's chromium)")
}

#[test]
fn timeline_and_flamegraph_render_in_headless_chromium() {
    require_root();
    let out = scratch("screens");
    let res = run_profiler(&[
        "record",
        "-q",
        "--timeline",
        "-F",
        "499",
        "--output",
        out.to_str().unwrap(),
        "--",
        env!("CARGO_BIN_EXE_stacks"),
        "burn",
    ]);
    assert!(res.status.success(), "{res:?}");
    for (file, needles) in [
        ("timeline.svg", &["Timeline:", "spin-alpha", "running"][..]),
        ("oncpu.svg", &["On-CPU", "burn_alpha"][..]),
    ] {
        let page = out.join(file);
        let dom = chromium(&["--dump-dom"], &page, &out.join(format!("chr-{file}")));
        assert!(
            dom.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&dom.stderr)
        );
        let text = String::from_utf8_lossy(&dom.stdout);
        assert!(
            !text.contains("This page contains the following errors"),
            "{file} has XML errors:\n{text}"
        );
        for n in needles {
            assert!(text.contains(n), "{file} as rendered lacks {n:?}");
        }
        let png = out.join(format!("{file}.png"));
        let shot = chromium(
            &[
                &format!("--screenshot={}", png.display()),
                "--window-size=1200,600",
            ],
            &page,
            &out.join(format!("chr2-{file}")),
        );
        assert!(shot.status.success(), "{file}: screenshot failed");
        let size = fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5_000, "{file}: screenshot of {size} bytes is blank");
    }
}

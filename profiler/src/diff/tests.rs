//! `diff` on hand-made profiles.

use super::*;
use crate::profile::*;

const MS: u64 = 1_000_000;

/// A profile whose process spent `main_ms` on CPU in `main` and `burn_ms`
/// in `main;burn`, sampled at 1000 Hz, with `created` threads created.
pub(crate) fn mk(main_ms: u64, burn_ms: u64, created: u64) -> Profile {
    let f = |n: &str| Frame {
        name: n.into(),
        module: "app".into(),
        kernel: false,
    };
    let on = main_ms + burn_ms;
    Profile {
        format: FORMAT.into(),
        tool: Tool {
            name: "profiler".into(),
            version: "0".into(),
        },
        target: Target {
            pid: 1,
            comm: "app".into(),
            exe: String::new(),
            cmdline: vec![],
            start_ticks: 0,
        },
        window: Window {
            start_ns: 0,
            end_ns: 2000 * MS,
            duration_ns: 2000 * MS,
            start_unix_ns: 0,
            end_reason: "target_exited".into(),
        },
        totals: Totals {
            threads_seen: 1 + created,
            threads_created: created,
            on_cpu_ns: on * MS,
            off_cpu_ns: (2000 - on) * MS,
            context_switches: 100,
            ..Totals::default()
        },
        lost: Lost::default(),
        threads: vec![Thread {
            tid: 1,
            pid: 1,
            name: "app".into(),
            names: vec!["app".into()],
            complete: true,
            ..Thread::default()
        }],
        execs: vec![],
        runtime: None,
        command: None,
        sampling: Sampling {
            stacks: true,
            freq_hz: 1000,
            samples: on,
            stack_cache_hits: 0,
        },
        frames: vec![f("main"), f("burn")],
        stacks: vec![vec![0], vec![0, 1]],
        oncpu: vec![
            OnCpu {
                tid: 1,
                stack: 0,
                count: main_ms,
            },
            OnCpu {
                tid: 1,
                stack: 1,
                count: burn_ms,
            },
        ],
        offcpu: vec![],
        timeline: None,
        overhead: None,
    }
}

#[test]
fn identical_profiles_pass() {
    let d = compare(
        &[mk(100, 400, 2)],
        &[mk(100, 400, 2)],
        &Budgets::defaults(),
        0.05,
    );
    assert!(!d.regressed);
    assert!(!d.noise_estimate);
    assert!(d.gated.iter().all(|r| r.status == Status::Ok));
    assert!(d.functions_grown.is_empty());
}

#[test]
fn thirty_percent_more_cpu_in_one_function_fails_and_names_it() {
    // burn: 400 -> 550 ms: on_cpu 500 -> 650 (+30%).
    let d = compare(
        &[mk(100, 400, 2)],
        &[mk(100, 550, 2)],
        &Budgets::defaults(),
        0.05,
    );
    assert!(d.regressed);
    let on = d.gated.iter().find(|r| r.metric == "on_cpu").unwrap();
    assert_eq!(on.status, Status::Regressed);
    assert!((on.ratio.unwrap() - 1.3).abs() < 1e-9);
    // The function behind it: burn (main's total grows too, as burn's caller).
    let names: Vec<&str> = d
        .functions_grown
        .iter()
        .map(|r| r.metric.as_str())
        .collect();
    assert!(names.contains(&"func.burn.total"), "{names:?}");
    assert!(!names.contains(&"func.nothing.total"));
}

#[test]
fn an_extra_thread_fails_with_a_zero_budget() {
    let d = compare(
        &[mk(100, 400, 2)],
        &[mk(100, 400, 3)],
        &Budgets::defaults(),
        0.05,
    );
    assert!(d.regressed);
    let t = d
        .gated
        .iter()
        .find(|r| r.metric == "threads_created")
        .unwrap();
    assert_eq!(
        (t.base_median, t.new_median, t.status),
        (2.0, 3.0, Status::Regressed)
    );
    // A looser explicit budget passes.
    let mut b = Budgets::defaults();
    b.add_flag("threads_created=1").unwrap();
    assert!(!compare(&[mk(100, 400, 2)], &[mk(100, 400, 3)], &b, 0.05).regressed);
}

#[test]
fn noise_within_the_band_passes_and_a_real_shift_fails_with_five_runs() {
    let base: Vec<Profile> = [500, 515, 485, 505, 495]
        .iter()
        .map(|&b| mk(100, b - 100, 2))
        .collect();
    // Same distribution, shuffled a little.
    let same: Vec<Profile> = [505, 490, 510, 500, 520]
        .iter()
        .map(|&b| mk(100, b - 100, 2))
        .collect();
    let d = compare(&base, &same, &Budgets::defaults(), 0.05);
    assert!(d.noise_estimate);
    assert!(!d.regressed, "{:#?}", d.gated);
    // +30%: clear shift.
    let slow: Vec<Profile> = [650, 670, 640, 655, 660]
        .iter()
        .map(|&b| mk(100, b - 100, 2))
        .collect();
    let d = compare(&base, &slow, &Budgets::defaults(), 0.05);
    assert!(d.regressed);
    let on = d.gated.iter().find(|r| r.metric == "on_cpu").unwrap();
    assert!(on.p_value.unwrap() < 0.01, "{:?}", on.p_value);
    let (lo, hi) = on.ratio_ci.unwrap();
    assert!(lo > 1.2 && hi < 1.45, "{lo} {hi}");
}

#[test]
fn a_big_change_inside_the_noise_is_not_a_regression() {
    // Medians differ by 12% but the runs overlap completely.
    let base: Vec<Profile> = [400, 700, 450, 650, 500]
        .iter()
        .map(|&b| mk(100, b - 100, 2))
        .collect();
    let new: Vec<Profile> = [420, 720, 560, 680, 430]
        .iter()
        .map(|&b| mk(100, b - 100, 2))
        .collect();
    let d = compare(&base, &new, &Budgets::defaults(), 0.05);
    let on = d.gated.iter().find(|r| r.metric == "on_cpu").unwrap();
    assert!(on.p_value.unwrap() > 0.05);
    assert_eq!(on.status, Status::Ok);
}

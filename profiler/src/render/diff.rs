//! Renderings of a [`Diff`]: the terminal summary, Markdown for a
//! pull-request comment or `$GITHUB_STEP_SUMMARY`, and JSON for machines.

use std::fmt::Write;

use crate::{
    diff::{Diff, Row, Status, metrics::Kind},
    units::ns,
};

fn value(kind: Kind, v: f64) -> String {
    match kind {
        Kind::Time => ns(v.max(0.0) as u64),
        _ => {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
    }
}

fn change(r: &Row) -> String {
    let sign = if r.delta >= 0.0 { "+" } else { "-" };
    let abs = value(r.kind, r.delta.abs());
    match r.ratio {
        Some(x) => format!("{sign}{abs} ({sign}{:.1}%)", (x - 1.0).abs() * 100.0),
        None if r.delta == 0.0 => "no change".into(),
        None => format!("{sign}{abs} (new)"),
    }
}

fn evidence(r: &Row) -> String {
    let mut v = Vec::new();
    if let Some(p) = r.p_value {
        v.push(format!("p={p:.3}"));
    }
    if let Some((lo, hi)) = r.ratio_ci {
        v.push(format!("95% CI ×{lo:.3}–×{hi:.3}"));
    }
    if let Some(b) = &r.budget {
        v.push(format!("budget {b}"));
    }
    v.join(", ")
}

fn func_name(metric: &str) -> &str {
    let m = metric
        .strip_prefix("func.")
        .or_else(|| metric.strip_prefix("offcpu."))
        .unwrap_or(metric);
    m.strip_suffix(".total").unwrap_or(m)
}

/// The terminal summary.
pub fn text(d: &Diff) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "profiler diff: {} base run(s) vs {} new run(s){}",
        d.base_runs,
        d.new_runs,
        if d.noise_estimate {
            format!("; Mann-Whitney U test, alpha {}", d.alpha)
        } else {
            "; one run on a side: no noise estimate, changes are taken at face value".into()
        }
    );
    let section = |w: &mut String, title: &str, status: Status| {
        let rows: Vec<&Row> = d.gated.iter().filter(|r| r.status == status).collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(w, "\n{title}");
        for r in rows {
            let _ = writeln!(
                w,
                "  {:<28} {} → {}  {}  [{}]",
                r.metric,
                value(r.kind, r.base_median),
                value(r.kind, r.new_median),
                change(r),
                evidence(r)
            );
        }
    };
    section(&mut w, "REGRESSED (beyond budget)", Status::Regressed);
    section(&mut w, "IMPROVED", Status::Improved);
    section(&mut w, "within budget", Status::Ok);
    if !d.functions_grown.is_empty() {
        let _ = writeln!(
            w,
            "\nfunctions whose on-CPU time grew most (self + callees):"
        );
        for r in d.functions_grown.iter().take(8) {
            let _ = writeln!(w, "  {:<40} {}", func_name(&r.metric), change(r));
        }
    }
    if !d.offcpu_functions_grown.is_empty() {
        let _ = writeln!(w, "\nfunctions whose off-CPU time grew most:");
        for r in d.offcpu_functions_grown.iter().take(5) {
            let _ = writeln!(w, "  {:<40} {}", func_name(&r.metric), change(r));
        }
    }
    if !d.changes.is_empty() {
        let _ = writeln!(w, "\nother notable changes (no budget):");
        for r in d.changes.iter().take(8) {
            let _ = writeln!(
                w,
                "  {:<28} {} → {}  {}",
                r.metric,
                value(r.kind, r.base_median),
                value(r.kind, r.new_median),
                change(r)
            );
        }
    }
    let n = d
        .gated
        .iter()
        .filter(|r| r.status == Status::Regressed)
        .count();
    let _ = writeln!(
        w,
        "\nverdict: {}",
        if d.regressed {
            format!("FAIL: {n} metric(s) regressed beyond budget")
        } else {
            "PASS: no regression beyond budget".into()
        }
    );
    w
}

/// Markdown for a pull-request comment.
pub fn markdown(d: &Diff) -> String {
    let mut w = String::new();
    let verdict = if d.regressed {
        "❌ regression"
    } else {
        "✅ no regression"
    };
    let _ = writeln!(w, "### profiler diff: {verdict}\n");
    let _ = writeln!(
        w,
        "{} base run(s) vs {} new run(s). {}\n",
        d.base_runs,
        d.new_runs,
        if d.noise_estimate {
            format!(
                "Differences tested with Mann-Whitney U (alpha {}).",
                d.alpha
            )
        } else {
            "One run on a side: no noise estimate.".into()
        }
    );
    let _ = writeln!(w, "| metric | base | new | change | evidence | status |");
    let _ = writeln!(w, "|---|---:|---:|---:|---|---|");
    for r in &d.gated {
        let status = match r.status {
            Status::Regressed => "**regressed**",
            Status::Improved => "improved",
            Status::Ok => "ok",
        };
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {status} |",
            r.metric,
            value(r.kind, r.base_median),
            value(r.kind, r.new_median),
            change(r),
            evidence(r)
        );
    }
    if !d.functions_grown.is_empty() {
        let _ = writeln!(w, "\n**Functions whose on-CPU time grew most**\n");
        for r in d.functions_grown.iter().take(5) {
            let _ = writeln!(w, "- `{}` {}", func_name(&r.metric), change(r));
        }
    }
    if !d.offcpu_functions_grown.is_empty() {
        let _ = writeln!(w, "\n**Functions whose off-CPU time grew most**\n");
        for r in d.offcpu_functions_grown.iter().take(5) {
            let _ = writeln!(w, "- `{}` {}", func_name(&r.metric), change(r));
        }
    }
    w
}

/// JSON for machines.
pub fn json(d: &Diff) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(d)? + "\n")
}

#[cfg(test)]
mod tests {
    use crate::diff::{budget::Budgets, compare, tests::mk};

    /// Golden file: `PROFILER_BLESS=1 cargo test` rewrites it.
    #[test]
    fn regression_summary_matches_the_golden_file() {
        let d = compare(
            &[mk(100, 400, 2)],
            &[mk(100, 550, 3)],
            &Budgets::defaults(),
            0.05,
        );
        let got = super::text(&d);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/diff_regression.txt");
        if std::env::var_os("PROFILER_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want =
            std::fs::read_to_string(&path).expect("golden file (PROFILER_BLESS=1 to create)");
        assert_eq!(got, want);
        let md = super::markdown(&d);
        assert!(
            md.contains("❌ regression") && md.contains("| `on_cpu` |") && md.contains("`burn`")
        );
        let v: serde_json::Value = serde_json::from_str(&super::json(&d).unwrap()).unwrap();
        assert_eq!(v["regressed"], true);
    }
}

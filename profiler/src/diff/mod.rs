//! `profiler diff`: compares profiles of a base and a new build (one or
//! several runs each) metric by metric, against budgets, and decides
//! whether the new one regressed.
//!
//! Decision per metric with a budget: the increase of the median must
//! exceed the budget, and, for noisy metrics with 2+ runs per side, the
//! Mann-Whitney U test must find the two sides different (p < alpha). With
//! one run per side there is no noise estimate and the report says so.
//! Exact counts (threads created) are compared as they are.

pub mod budget;
pub mod metrics;
pub mod stats;

use std::collections::BTreeSet;

use serde::Serialize;

use budget::{Budgets, Limit};
use metrics::{Kind, Metrics};

use crate::profile::Profile;

/// What happened to one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Grew past its budget (and past the noise).
    Regressed,
    /// Shrank by more than the budget (and the noise).
    Improved,
    /// Within budget or noise.
    Ok,
}

/// One metric compared.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub kind: Kind,
    pub base: Vec<f64>,
    pub new: Vec<f64>,
    pub base_median: f64,
    pub new_median: f64,
    /// `new_median - base_median`.
    pub delta: f64,
    /// `new_median / base_median` (None when the base is 0).
    pub ratio: Option<f64>,
    /// Mann-Whitney U two-sided p-value (2+ runs per side, noisy kinds).
    pub p_value: Option<f64>,
    /// 95% bootstrap interval of the ratio of medians.
    pub ratio_ci: Option<(f64, f64)>,
    /// The budget checked, as text (`+5%`, `+0`).
    pub budget: Option<String>,
    pub status: Status,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub base_runs: usize,
    pub new_runs: usize,
    pub alpha: f64,
    /// False with a single run on a side: changes cannot be told from noise.
    pub noise_estimate: bool,
    /// Metrics with a budget, in name order.
    pub gated: Vec<Row>,
    /// Other metrics that changed notably (no budget), largest first.
    pub changes: Vec<Row>,
    /// Functions whose on-CPU time grew most (`func.*.total`).
    pub functions_grown: Vec<Row>,
    /// Functions whose off-CPU time grew most (`offcpu.*.total`).
    pub offcpu_functions_grown: Vec<Row>,
    pub regressed: bool,
}

fn limit_exceeded(limit: Limit, base: f64, delta: f64) -> bool {
    match limit {
        Limit::Relative(r) => {
            if base <= 0.0 {
                delta > 0.0
            } else {
                delta > r * base
            }
        }
        Limit::Absolute(a) => delta > a,
    }
}

fn row(
    metric: &str,
    kind: Kind,
    base: Vec<f64>,
    new: Vec<f64>,
    limit: Option<Limit>,
    alpha: f64,
) -> Row {
    let bm = stats::median(&base);
    let nm = stats::median(&new);
    let delta = nm - bm;
    let noisy = kind != Kind::Exact;
    let p_value = if noisy && base.len() >= 2 && new.len() >= 2 {
        stats::mann_whitney_p(&base, &new)
    } else {
        None
    };
    let significant = p_value.is_none_or(|p| p < alpha);
    let status = match limit {
        Some(l) if limit_exceeded(l, bm, delta) && significant => Status::Regressed,
        Some(l) if limit_exceeded(l, nm, -delta) && significant => Status::Improved,
        _ => Status::Ok,
    };
    Row {
        metric: metric.to_string(),
        kind,
        ratio_ci: if noisy {
            stats::ratio_ci(&base, &new)
        } else {
            None
        },
        ratio: (bm > 0.0).then(|| nm / bm),
        base,
        new,
        base_median: bm,
        new_median: nm,
        delta,
        p_value,
        budget: limit.map(|l| l.to_string()),
        status,
    }
}

/// Compares `base` runs with `new` runs.
pub fn compare(base: &[Profile], new: &[Profile], budgets: &Budgets, alpha: f64) -> Diff {
    let bm: Vec<Metrics> = base.iter().map(metrics::extract).collect();
    let nm: Vec<Metrics> = new.iter().map(metrics::extract).collect();
    let names: BTreeSet<&String> = bm.iter().chain(nm.iter()).flat_map(|m| m.keys()).collect();
    let values = |side: &[Metrics], name: &str| -> Vec<f64> {
        side.iter()
            .map(|m| m.get(name).map(|v| v.1).unwrap_or(0.0))
            .collect()
    };
    let kind_of = |name: &str| {
        bm.iter()
            .chain(nm.iter())
            .find_map(|m| m.get(name).map(|v| v.0))
            .unwrap_or(Kind::Time)
    };
    let mut gated = Vec::new();
    let mut changes = Vec::new();
    let mut functions = Vec::new();
    let mut offcpu_functions = Vec::new();
    for name in names {
        let limit = budgets.limit(name);
        let r = row(
            name,
            kind_of(name),
            values(&bm, name),
            values(&nm, name),
            limit,
            alpha,
        );
        if limit.is_some() {
            gated.push(r.clone());
        }
        if name.starts_with("func.") && name.ends_with(".total") {
            functions.push(r);
        } else if name.starts_with("offcpu.") {
            offcpu_functions.push(r);
        } else if limit.is_none() {
            // Notable: >10% and significant (or no noise estimate).
            let rel = if r.base_median > 0.0 {
                r.delta.abs() / r.base_median
            } else {
                f64::from(u8::from(r.delta != 0.0))
            };
            if rel > 0.10 && r.p_value.is_none_or(|p| p < alpha) {
                changes.push(r);
            }
        }
    }
    // How deep each function sits in the stacks of the new runs: when a
    // function and its callers all grew by the same amount, the deepest
    // one is the one behind it.
    let mut depth: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for p in new {
        for st in p
            .oncpu
            .iter()
            .map(|s| s.stack)
            .chain(p.offcpu.iter().map(|s| s.stack))
        {
            for (i, f) in p.stack_frames(st).iter().enumerate() {
                let d = depth.entry(f.name.clone()).or_default();
                *d = (*d).max(i);
            }
        }
    }
    let func_depth = |metric: &str| {
        let name = metric
            .strip_prefix("func.")
            .or_else(|| metric.strip_prefix("offcpu."))
            .and_then(|m| m.strip_suffix(".total"))
            .unwrap_or(metric);
        depth.get(name).copied().unwrap_or(0)
    };
    let by_delta = |v: &mut Vec<Row>| {
        v.retain(|r| r.delta > 0.0 && r.p_value.is_none_or(|p| p < alpha));
        let max = v.iter().map(|r| r.delta).fold(0.0, f64::max).max(1.0);
        // Growth in 5% buckets of the largest, then deepest first.
        let bucket = |r: &Row| (r.delta / max * 20.0).round() as i64;
        v.sort_by(|a, b| {
            bucket(b)
                .cmp(&bucket(a))
                .then(func_depth(&b.metric).cmp(&func_depth(&a.metric)))
                .then(b.delta.total_cmp(&a.delta))
        });
        v.truncate(10);
    };
    by_delta(&mut functions);
    by_delta(&mut offcpu_functions);
    changes.sort_by(|a, b| {
        let rel = |r: &Row| {
            if r.base_median > 0.0 {
                r.delta.abs() / r.base_median
            } else {
                f64::INFINITY
            }
        };
        rel(b).total_cmp(&rel(a))
    });
    changes.truncate(15);
    let regressed = gated.iter().any(|r| r.status == Status::Regressed);
    Diff {
        base_runs: base.len(),
        new_runs: new.len(),
        alpha,
        noise_estimate: base.len() >= 2 && new.len() >= 2,
        gated,
        changes,
        functions_grown: functions,
        offcpu_functions_grown: offcpu_functions,
        regressed,
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! Budgets: how much each metric may grow before `diff` calls it a
//! regression. From `--max-increase METRIC=LIMIT` flags and/or a budget
//! file (TOML or JSON) with a `max_increase` table; flags win. A metric
//! name may end in `*` to cover a family (`syscall.*.time`). LIMIT is a
//! percentage (`5%`), or an absolute amount in the metric's unit: a
//! duration (`10ms`, `2s`) for time metrics, a number for counts.

use std::collections::BTreeMap;

/// A limit on a metric's increase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Relative increase, as a fraction (0.05 = 5%).
    Relative(f64),
    /// Absolute increase in the metric's unit (ns for times).
    Absolute(f64),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Relative(r) => write!(f, "+{}%", r * 100.0),
            Limit::Absolute(a) => write!(f, "+{a}"),
        }
    }
}

/// Parses a LIMIT (`5%`, `0`, `12`, `10ms`).
pub fn parse_limit(s: &str) -> Result<Limit, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("invalid limit '{s}': use e.g. 5%, 0, 10ms"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("invalid limit '{s}': must be >= 0"));
        }
        return Ok(Limit::Relative(v / 100.0));
    }
    if let Ok(v) = t.parse::<f64>() {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("invalid limit '{s}': must be >= 0"));
        }
        return Ok(Limit::Absolute(v));
    }
    crate::duration::parse(t)
        .map(|d| Limit::Absolute(d.as_nanos() as f64))
        .map_err(|_| format!("invalid limit '{s}': use e.g. 5%, 0, 10ms"))
}

/// Metric name -> limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budgets(pub BTreeMap<String, Limit>);

impl Budgets {
    /// What `diff` checks when given no budget at all.
    pub fn defaults() -> Budgets {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("on_cpu", Limit::Relative(0.10)),
            ("wall", Limit::Relative(0.10)),
            ("runnable", Limit::Relative(0.25)),
            ("blocked", Limit::Relative(0.25)),
            ("context_switches", Limit::Relative(0.25)),
            ("threads_created", Limit::Absolute(0.0)),
        ] {
            m.insert(k.to_string(), v);
        }
        Budgets(m)
    }

    /// Adds `METRIC=LIMIT`.
    pub fn add_flag(&mut self, s: &str) -> Result<(), String> {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            format!("invalid --max-increase '{s}': use METRIC=LIMIT, e.g. on_cpu=5%")
        })?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("invalid --max-increase '{s}': empty metric name"));
        }
        self.0.insert(k.to_string(), parse_limit(v)?);
        Ok(())
    }

    /// Reads a budget file: `[max_increase]` (TOML) or
    /// `{"max_increase": {...}}` (JSON), values as strings or numbers.
    pub fn from_file(path: &std::path::Path) -> Result<Budgets, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("budget file {}: {e}", path.display()))?;
        let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|e| format!("budget file {}: {e}", path.display()))?
        } else {
            let t: toml::Value = toml::from_str(&text)
                .map_err(|e| format!("budget file {}: {e}", path.display()))?;
            serde_json::to_value(t).map_err(|e| format!("budget file {}: {e}", path.display()))?
        };
        let table = value
            .get("max_increase")
            .and_then(|v| v.as_object())
            .ok_or_else(|| format!("budget file {}: needs a max_increase table", path.display()))?;
        let mut b = Budgets::default();
        for (k, v) in table {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!(
                        "budget file {}: {k} = {other} is not a limit",
                        path.display()
                    ));
                }
            };
            b.0.insert(
                k.clone(),
                parse_limit(&s).map_err(|e| format!("budget file {}: {k}: {e}", path.display()))?,
            );
        }
        Ok(b)
    }

    /// The limit for `metric`: exact name first, then the longest `*`
    /// pattern that matches.
    pub fn limit(&self, metric: &str) -> Option<Limit> {
        if let Some(l) = self.0.get(metric) {
            return Some(*l);
        }
        self.0
            .iter()
            .filter(|(k, _)| glob(k, metric))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, l)| *l)
    }
}

/// `a*b` style match with any number of `*`.
fn glob(pattern: &str, s: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == s;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_flags_and_globs() {
        assert_eq!(parse_limit("5%").unwrap(), Limit::Relative(0.05));
        assert_eq!(parse_limit("0").unwrap(), Limit::Absolute(0.0));
        assert_eq!(parse_limit("10ms").unwrap(), Limit::Absolute(10_000_000.0));
        assert!(parse_limit("-5%").is_err());
        assert!(parse_limit("lots").unwrap_err().contains("'lots'"));
        let mut b = Budgets::default();
        b.add_flag("syscall.*.count=10%").unwrap();
        b.add_flag("syscall.read.count=0").unwrap();
        assert!(b.add_flag("nonsense").is_err());
        assert_eq!(b.limit("syscall.read.count"), Some(Limit::Absolute(0.0)));
        assert_eq!(b.limit("syscall.write.count"), Some(Limit::Relative(0.1)));
        assert_eq!(b.limit("on_cpu"), None);
        assert!(glob("func.*", "func.main.total"));
        assert!(!glob("func.*.self", "func.main.total"));
    }

    #[test]
    fn budget_files_in_toml_and_json() {
        let d = std::env::temp_dir().join(format!("profiler-budget-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let t = d.join("b.toml");
        std::fs::write(&t, "[max_increase]\non_cpu = \"5%\"\nthreads_created = 0\n").unwrap();
        let b = Budgets::from_file(&t).unwrap();
        assert_eq!(b.limit("on_cpu"), Some(Limit::Relative(0.05)));
        assert_eq!(b.limit("threads_created"), Some(Limit::Absolute(0.0)));
        let j = d.join("b.json");
        std::fs::write(&j, "{\"max_increase\": {\"wall\": \"2%\"}}").unwrap();
        assert_eq!(
            Budgets::from_file(&j).unwrap().limit("wall"),
            Some(Limit::Relative(0.02))
        );
        std::fs::write(&j, "{\"nope\": 1}").unwrap();
        assert!(Budgets::from_file(&j).unwrap_err().contains("max_increase"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

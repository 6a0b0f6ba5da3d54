//! Human units for the text report.

/// `850ns`, `12.3µs`, `123.4ms`, `1.23s`, `2m03s`.
pub fn ns(v: u64) -> String {
    let f = v as f64;
    if v < 1_000 {
        format!("{v}ns")
    } else if v < 1_000_000 {
        format!("{:.1}µs", f / 1e3)
    } else if v < 1_000_000_000 {
        format!("{:.1}ms", f / 1e6)
    } else if v < 60_000_000_000 {
        format!("{:.2}s", f / 1e9)
    } else {
        let s = v / 1_000_000_000;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// A share as a percentage with one decimal, `-` when the whole is zero.
pub fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn picks_the_unit() {
        assert_eq!(super::ns(850), "850ns");
        assert_eq!(super::ns(12_340), "12.3µs");
        assert_eq!(super::ns(123_400_000), "123.4ms");
        assert_eq!(super::ns(1_234_000_000), "1.23s");
        assert_eq!(super::ns(123_000_000_000), "2m03s");
        assert_eq!(super::pct(1, 4), "25.0%");
        assert_eq!(super::pct(1, 0), "-");
    }
}

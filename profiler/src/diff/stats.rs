//! The statistics `diff` decides with: the exact two-sided Mann-Whitney U
//! test (small samples, as CI runs are: 2-20 per side) and a bootstrap
//! confidence interval of the ratio of medians. Written here because the
//! maintained statistics crates (statrs) have neither; both are short.

/// Median of a non-empty slice.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Two-sided p-value of the Mann-Whitney U test of `a` against `b`,
/// exact (the distribution of U by counting, ties given half credit), for
/// samples up to 50 each; `None` for empty samples or larger ones.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 || n > 50 || m > 50 {
        return None;
    }
    // U (doubled, to keep ties integral) of a over b.
    let mut u2: u64 = 0;
    for x in a {
        for y in b {
            u2 += match x.total_cmp(y) {
                std::cmp::Ordering::Greater => 2,
                std::cmp::Ordering::Equal => 1,
                std::cmp::Ordering::Less => 0,
            };
        }
    }
    // counts[k][u] = number of arrangements of k a's among the first
    // positions with statistic u: the recurrence over (n, m).
    let max_u = n * m;
    // dp over i a's and j b's: ways[i][j][u].
    let mut ways = vec![vec![vec![0f64; max_u + 1]; m + 1]; n + 1];
    for w in ways[0].iter_mut() {
        w[0] = 1.0;
    }
    for i in 1..=n {
        ways[i][0][0] = 1.0;
        for j in 1..=m {
            for u in 0..=max_u {
                // Largest element is an `a` (beats all j b's) or a `b`.
                let from_a = if u >= j { ways[i - 1][j][u - j] } else { 0.0 };
                let from_b = ways[i][j - 1][u];
                ways[i][j][u] = from_a + from_b;
            }
        }
    }
    let total: f64 = ways[n][m].iter().sum();
    let mean2 = (n * m) as u64; // 2 * (n*m/2)
    let dev = u2.abs_diff(mean2);
    // P(|2U - nm| >= dev)
    let p: f64 = (0..=max_u)
        .filter(|&u| ((2 * u) as u64).abs_diff(mean2) >= dev)
        .map(|u| ways[n][m][u])
        .sum::<f64>()
        / total;
    Some(p.min(1.0))
}

/// A small deterministic PRNG (xorshift64*), so verdicts are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, v: &'a [f64]) -> &'a f64 {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

/// 95% bootstrap interval of median(new) / median(base), `None` when a
/// side has fewer than 2 runs or a zero median.
pub fn ratio_ci(base: &[f64], new: &[f64]) -> Option<(f64, f64)> {
    if base.len() < 2 || new.len() < 2 {
        return None;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ratios = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let b: Vec<f64> = (0..base.len()).map(|_| *rng.pick(base)).collect();
        let n: Vec<f64> = (0..new.len()).map(|_| *rng.pick(new)).collect();
        let mb = median(&b);
        if mb > 0.0 {
            ratios.push(median(&n) / mb);
        }
    }
    if ratios.len() < 100 {
        return None;
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn mann_whitney_known_values() {
        // Complete separation with 5 vs 5: p = 2 / C(10,5) = 2/252.
        let p = mann_whitney_p(&[1., 2., 3., 4., 5.], &[6., 7., 8., 9., 10.]).unwrap();
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        // Identical samples: p = 1.
        let p = mann_whitney_p(&[1., 2., 3.], &[1., 2., 3.]).unwrap();
        assert!((p - 1.0).abs() < 1e-12, "{p}");
        // 3 vs 3 full separation: 2/20.
        let p = mann_whitney_p(&[1., 2., 3.], &[4., 5., 6.]).unwrap();
        assert!((p - 0.1).abs() < 1e-12);
        // Interleaved: large p.
        let p = mann_whitney_p(&[1., 3., 5., 7., 9.], &[2., 4., 6., 8., 10.]).unwrap();
        assert!(p > 0.5, "{p}");
        assert!(mann_whitney_p(&[], &[1.0]).is_none());
    }

    #[test]
    fn bootstrap_interval_brackets_the_ratio() {
        let base = [100.0, 101.0, 99.0, 100.5, 99.5];
        let new = [130.0, 131.0, 129.0, 130.5, 129.5];
        let (lo, hi) = ratio_ci(&base, &new).unwrap();
        assert!(lo > 1.25 && hi < 1.35, "{lo} {hi}");
        assert!(ratio_ci(&[1.0], &[2.0]).is_none());
    }
}

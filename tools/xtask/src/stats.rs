//! Median and spread of repeated runs, and ratios taken run by run.

/// The median of a set of runs and the range they span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// The median of `values` (the mean of the two middle ones for an even
/// count); `None` when there is none. NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Median, min and max of `values`; `None` when there is none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let med = median(values)?;
    let finite = values.iter().copied().filter(|x| !x.is_nan());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.clone().fold(f64::NEG_INFINITY, f64::max);
    Some(Spread {
        median: med,
        min,
        max,
        n: finite.count(),
    })
}

/// The median of the ratios `a[k] / b[k]` over the runs `k` where both
/// sides have a value: ratios taken within one run (the servers measured
/// back to back) are steadier than a ratio of medians on a noisy machine.
pub fn paired_ratio(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    median(&ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_count_is_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn median_of_even_count_is_mean_of_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn median_of_nothing_is_none() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn spread_reports_min_and_max_around_median() {
        let s = spread(&[10.0, 30.0, 20.0]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 20.0,
                min: 10.0,
                max: 30.0,
                n: 3
            }
        );
    }

    #[test]
    fn spread_of_one_run_is_a_point() {
        let s = spread(&[5.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (5.0, 5.0, 5.0, 1));
    }

    #[test]
    fn paired_ratio_uses_only_runs_where_both_sides_ran() {
        let a = [Some(200.0), None, Some(90.0), Some(300.0)];
        let b = [Some(100.0), Some(100.0), Some(100.0), None];
        // ratios 2.0 and 0.9 -> median 1.45
        let r = paired_ratio(&a, &b).unwrap();
        assert!((r - 1.45).abs() < 1e-9, "{r}");
    }

    #[test]
    fn paired_ratio_ignores_zero_denominators() {
        assert_eq!(paired_ratio(&[Some(1.0)], &[Some(0.0)]), None);
    }
}

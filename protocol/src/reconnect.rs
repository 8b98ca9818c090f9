//! Reconnecting and spreading, as rules without a clock or a socket: how
//! long a client waits before it connects again ([`Backoff`]), and which of
//! several connections a request goes to ([`pick_two`]). The caller passes
//! the time and the randomness in, so both are deterministic under test.

use core::time::Duration;

use crate::config::{count, duration_ms, range};
use crate::error::{ConfigError, Setting};

/// How a client reconnects after it lost its connection (or could not
/// make one): exponential backoff with jitter.
///
/// The n-th wait in a row (from 0) is drawn from `[d/2, d]` where
/// `d = min(max, initial * 2^n)`: "equal jitter", so clients that lost a
/// server together do not come back together, and none comes back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first wait's upper bound (default 100 ms; 1 ms or more).
    pub initial: Duration,
    /// The longest wait (default 10 s; at least `initial`).
    pub max: Duration,
    /// Give up after this many failed attempts in a row (`None`, the
    /// default: never).
    pub max_attempts: Option<u32>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl BackoffConfig {
    /// Checks the settings; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let initial = duration_ms(self.initial);
        range(Setting::BackoffInitial, initial, 1, u64::from(u32::MAX))?;
        range(
            Setting::BackoffMax,
            duration_ms(self.max),
            initial,
            u64::from(u32::MAX),
        )?;
        if let Some(n) = self.max_attempts {
            range(
                Setting::BackoffMaxAttempts,
                count(n as usize),
                1,
                u64::from(u32::MAX),
            )?;
        }
        Ok(())
    }
}

/// The state of one reconnecting connection: failures in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
}

impl Backoff {
    /// No failure yet.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            failures: 0,
        }
    }

    /// Failed attempts (or lost connections) in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// One more failure: how long to wait before the next attempt, with
    /// `random` (any u64, e.g. from a hasher's random state) drawing the
    /// jitter; `None` once `max_attempts` failures came in a row.
    pub fn failed(&mut self, random: u64) -> Option<Duration> {
        if self
            .config
            .max_attempts
            .is_some_and(|max| self.failures >= max)
        {
            return None;
        }
        let shift = self.failures.min(31);
        self.failures = self.failures.saturating_add(1);
        let cap = self
            .config
            .initial
            .checked_mul(1 << shift)
            .map_or(self.config.max, |d| d.min(self.config.max));
        let half = cap / 2;
        let span = u64::try_from((cap - half).as_nanos()).unwrap_or(u64::MAX);
        // Saturating: an unvalidated `max` of centuries must not overflow.
        let jitter = random % span.saturating_add(1);
        Some(half + Duration::from_nanos(jitter))
    }

    /// A connection was made and worked: the next failure starts again
    /// from `initial`.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// Power of two choices: of `n` members, two drawn by `random`, the one
/// with fewer requests in flight (`load(i)`; `None`: not available). When
/// neither drawn member is available, the least loaded available one;
/// `None` when there is none.
///
/// Two choices keep a client's requests nearly as even as asking every
/// member (least in flight), at the cost of two looks, and without every
/// client of a fleet piling onto the same least-loaded server.
pub fn pick_two(n: usize, random: u64, load: impl Fn(usize) -> Option<usize>) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let n64 = n as u64;
    let a = (random % n64) as usize;
    let b = if n > 1 {
        (a + 1 + ((random >> 32) % (n64 - 1)) as usize) % n
    } else {
        a
    };
    match (load(a), load(b)) {
        (Some(x), Some(y)) => Some(if y < x { b } else { a }),
        (Some(_), None) => Some(a),
        (None, Some(_)) => Some(b),
        (None, None) => (0..n)
            .filter_map(|i| load(i).map(|l| (l, i)))
            .min()
            .map(|(_, i)| i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn waits_double_from_initial_to_max_within_their_jitter_and_reset_on_success() {
        let mut b = Backoff::new(BackoffConfig::default());
        let mut caps = Vec::new();
        for _ in 0..10 {
            let lo = b.failed(0).unwrap_or_default();
            caps.push(lo * 2);
        }
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            caps,
            [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000].map(ms)
        );
        b.succeeded();
        let r = 12_345_678;
        assert_eq!(b.failed(r), Some(ms(50) + Duration::from_nanos(r)));
    }

    #[test]
    fn gives_up_after_max_attempts_failures_in_a_row() {
        let mut b = Backoff::new(BackoffConfig {
            max_attempts: Some(2),
            ..BackoffConfig::default()
        });
        assert!(b.failed(1).is_some());
        assert!(b.failed(2).is_some());
        assert_eq!(b.failed(3), None);
        b.succeeded();
        assert!(b.failed(4).is_some());
    }

    #[test]
    fn an_unvalidated_max_of_centuries_draws_a_wait_without_overflow() {
        let mut b = Backoff::new(BackoffConfig {
            initial: Duration::from_secs(u64::MAX / 4),
            max: Duration::MAX,
            max_attempts: None,
        });
        for random in [0, 1, u64::MAX] {
            let wait = b.failed(random).expect("a wait");
            assert!(wait >= Duration::from_secs(u64::MAX / 8), "{wait:?}");
        }
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let bad = BackoffConfig {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(1),
            max_attempts: None,
        };
        let e = bad.validate().err().map(|e| e.setting());
        assert_eq!(e, Some(Setting::BackoffMax));
        let zero = BackoffConfig {
            initial: Duration::ZERO,
            ..BackoffConfig::default()
        };
        assert_eq!(
            zero.validate().err().map(|e| e.setting()),
            Some(Setting::BackoffInitial)
        );
        assert!(BackoffConfig::default().validate().is_ok());
    }

    #[test]
    fn two_choices_take_the_less_loaded_and_skip_the_unavailable() {
        let loads = [Some(5), None, Some(1), Some(9)];
        let load = |i: usize| loads[i];
        // random 0 draws members 0 and 1 (1 unavailable): 0.
        assert_eq!(pick_two(4, 0, load), Some(0));
        // 0 and 2 (random >> 32 = 1): the less loaded, 2.
        assert_eq!(pick_two(4, 1 << 32, load), Some(2));
        let none = |_: usize| None::<usize>;
        assert_eq!(pick_two(4, 7, none), None);
        assert_eq!(pick_two(0, 7, load), None);
        assert_eq!(pick_two(1, 7, |_| Some(3)), Some(0));
    }

    proptest! {
        #[test]
        fn a_wait_is_within_half_its_cap_and_its_cap(
            initial_ms in 1u64..5_000, extra_ms in 0u64..60_000,
            randoms in proptest::collection::vec(any::<u64>(), 1..40),
        ) {
            let config = BackoffConfig {
                initial: Duration::from_millis(initial_ms),
                max: Duration::from_millis(initial_ms + extra_ms),
                max_attempts: None,
            };
            prop_assert!(config.validate().is_ok());
            let mut b = Backoff::new(config);
            for (n, r) in randoms.into_iter().enumerate() {
                let cap = config
                    .initial
                    .checked_mul(1u32 << (n as u32).min(31))
                    .map_or(config.max, |d| d.min(config.max));
                let wait = b.failed(r);
                prop_assert!(wait.is_some_and(|w| w >= cap / 2 && w <= cap), "{wait:?} {cap:?}");
            }
        }

        #[test]
        fn two_choices_never_pick_an_unavailable_member_while_one_is_available(
            loads in proptest::collection::vec(proptest::option::of(0usize..100), 0..12),
            random in any::<u64>(),
        ) {
            let pick = pick_two(loads.len(), random, |i| loads[i]);
            match pick {
                Some(i) => prop_assert!(loads[i].is_some()),
                None => prop_assert!(loads.iter().all(Option::is_none)),
            }
        }
    }
}

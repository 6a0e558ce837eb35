//! The pool's knobs: passive ejection, active rise/fall, slow start, panic threshold, retries.

use core::time::Duration;

use crate::PoolError;
use crate::tried::CAPACITY;

/// How the pool judges health and how many candidates a request may try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Consecutive failures that eject a backend (passive health); 0 turns passive ejection off.
    pub failures_to_eject: u32,
    /// First ejection's length; each ejection that follows a failed probation doubles it.
    pub base_ejection: Duration,
    /// Ejections never last longer than this.
    pub max_ejection: Duration,
    /// Active checks: consecutive successful probes that bring a down backend up.
    pub rise: u32,
    /// Active checks: consecutive failed probes that take an up backend down.
    pub fall: u32,
    /// A recovered backend's effective weight ramps over this window; zero turns slow start off.
    pub slow_start: Duration,
    /// Where the ramp starts, in percent of the full weight (1..=100).
    pub slow_start_floor_percent: u8,
    /// When fewer than this percent of a tier's backends are healthy, every backend of the tier
    /// is used regardless of health rather than overloading the few; 0 turns panic mode off.
    pub panic_threshold_percent: u8,
    /// Most candidates one request may be given (first pick plus retries), at most 32: the
    /// no-allocation retry list holds 32, so with more eligible backends a request's retries
    /// cover only 32 of them.
    pub max_attempts: u32,
}

impl Default for PoolConfig {
    /// Envoy-like defaults: eject after 5 failures for 10 s (up to 5 min), rise 2 / fall 3,
    /// slow start off, panic below 50 %, 3 attempts.
    fn default() -> Self {
        Self {
            failures_to_eject: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            rise: 2,
            fall: 3,
            slow_start: Duration::ZERO,
            slow_start_floor_percent: 10,
            panic_threshold_percent: 50,
            max_attempts: 3,
        }
    }
}

impl PoolConfig {
    pub(crate) fn validate(&self) -> Result<(), PoolError> {
        if self.failures_to_eject > 0 && self.base_ejection.is_zero() {
            return Err(PoolError::InvalidConfig("base_ejection must be > 0"));
        }
        if self.max_ejection < self.base_ejection {
            return Err(PoolError::InvalidConfig("max_ejection < base_ejection"));
        }
        if self.rise == 0 || self.fall == 0 {
            return Err(PoolError::InvalidConfig("rise and fall must be >= 1"));
        }
        if !(1..=100).contains(&self.slow_start_floor_percent) {
            return Err(PoolError::InvalidConfig(
                "slow_start_floor_percent must be 1..=100",
            ));
        }
        if self.panic_threshold_percent > 100 {
            return Err(PoolError::InvalidConfig(
                "panic_threshold_percent must be <= 100",
            ));
        }
        if self.max_attempts == 0 || self.max_attempts as usize > CAPACITY {
            return Err(PoolError::InvalidConfig("max_attempts must be 1..=32"));
        }
        Ok(())
    }
}

/// The settings as the pool uses them, one copy per pool: durations in nanoseconds (saturating
/// at 584 years), 48 bytes rather than `PoolConfig`'s 72.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) failures_to_eject: u32,
    pub(crate) rise: u32,
    pub(crate) fall: u32,
    pub(crate) max_attempts: u32,
    pub(crate) base_ejection: u64,
    pub(crate) max_ejection: u64,
    pub(crate) slow_start: u64,
    pub(crate) slow_start_floor_percent: u8,
    pub(crate) panic_threshold_percent: u8,
}

impl From<PoolConfig> for Settings {
    fn from(c: PoolConfig) -> Self {
        Self {
            failures_to_eject: c.failures_to_eject,
            rise: c.rise,
            fall: c.fall,
            max_attempts: c.max_attempts,
            base_ejection: nanos(c.base_ejection),
            max_ejection: nanos(c.max_ejection),
            slow_start: nanos(c.slow_start),
            slow_start_floor_percent: c.slow_start_floor_percent,
            panic_threshold_percent: c.panic_threshold_percent,
        }
    }
}

impl Settings {
    /// The configuration back (durations as the pool uses them).
    pub(crate) fn config(&self) -> PoolConfig {
        PoolConfig {
            failures_to_eject: self.failures_to_eject,
            base_ejection: Duration::from_nanos(self.base_ejection),
            max_ejection: Duration::from_nanos(self.max_ejection),
            rise: self.rise,
            fall: self.fall,
            slow_start: Duration::from_nanos(self.slow_start),
            slow_start_floor_percent: self.slow_start_floor_percent,
            panic_threshold_percent: self.panic_threshold_percent,
            max_attempts: self.max_attempts,
        }
    }
}

/// A duration as whole nanoseconds, saturating (584 years fit).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_give_the_configuration_back() {
        let config = PoolConfig {
            failures_to_eject: 7,
            base_ejection: Duration::from_millis(1500),
            max_ejection: Duration::from_secs(600),
            rise: 4,
            fall: 5,
            slow_start: Duration::from_nanos(1),
            slow_start_floor_percent: 33,
            panic_threshold_percent: 0,
            max_attempts: 32,
        };
        assert_eq!(Settings::from(config).config(), config);
        assert_eq!(
            Settings::from(PoolConfig::default()).config(),
            PoolConfig::default()
        );
    }

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        assert_eq!(PoolConfig::default().validate(), Ok(()));
        let bad = [
            PoolConfig {
                base_ejection: Duration::ZERO,
                ..Default::default()
            },
            PoolConfig {
                max_ejection: Duration::from_secs(1),
                ..Default::default()
            },
            PoolConfig {
                rise: 0,
                ..Default::default()
            },
            PoolConfig {
                slow_start_floor_percent: 0,
                ..Default::default()
            },
            PoolConfig {
                panic_threshold_percent: 101,
                ..Default::default()
            },
            PoolConfig {
                max_attempts: 33,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(PoolError::InvalidConfig(_))));
        }
    }
}

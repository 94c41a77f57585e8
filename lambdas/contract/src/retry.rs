//! The one retry policy: every loop of the project that tries again after a failure (the
//! DAP client's requests and downloads, a job creation, an object's load, a database
//! starting up, the bootstrap's answer to CloudFormation, deploy's reads of the stack's
//! events) takes a [`Backoff`], so that they differ only in its numbers, and the pauses
//! come from one well-kept crate (backon) rather than from a formula in each loop.

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// The pauses of a [`Backoff`], in order, as an iterator: `None` once no attempt is left.
pub type Pauses = ExponentialBackoff;

/// How a failed attempt is tried again: how many attempts in all, and the pauses between
/// them (the first, then each `factor` times the last, at most `max`). No jitter: the
/// callers that share a limit (DAP's job creations) take turns through the database instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Attempts in all, the first included; `None` for as many as the caller's deadline allows.
    pub attempts: Option<u32>,
    /// The pause after the first failed attempt.
    pub first: Duration,
    /// How much longer each next pause is than the last (1.0: always `first`).
    pub factor: f32,
    /// The longest pause.
    pub max: Duration,
}

impl Backoff {
    /// One attempt, no retry.
    pub const ONCE: Self = Self { attempts: Some(1), first: Duration::ZERO, factor: 1.0, max: Duration::ZERO };

    /// `attempts` in all, pausing `first`, then twice as long each time, at most `max`.
    pub const fn doubling(attempts: u32, first: Duration, max: Duration) -> Self {
        Self { attempts: Some(attempts), first, factor: 2.0, max }
    }

    /// Pausing `first`, then twice as long each time, at most `max`, for as long as the
    /// caller's deadline allows.
    pub const fn doubling_until_deadline(first: Duration, max: Duration) -> Self {
        Self { attempts: None, first, factor: 2.0, max }
    }

    /// The same pause between attempts, for as long as the caller's deadline allows.
    pub const fn every(pause: Duration) -> Self {
        Self { attempts: None, first: pause, factor: 1.0, max: pause }
    }

    /// backon's builder for this policy, for `Retryable::retry`.
    pub fn builder(&self) -> ExponentialBuilder {
        let builder =
            ExponentialBuilder::new().with_min_delay(self.first).with_factor(self.factor).with_max_delay(self.max);
        match self.attempts {
            Some(n) => builder.with_max_times(n.saturating_sub(1) as usize),
            None => builder.without_max_times(),
        }
    }

    /// The pauses after each failed attempt, in order: `None` once no attempt is left, so a
    /// loop asks it after each failure whether, and how long, to wait before the next.
    pub fn pauses(&self) -> Pauses {
        self.builder().build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(pauses: impl Iterator<Item = Duration>) -> Vec<u128> {
        pauses.map(|d| d.as_millis()).collect()
    }

    #[test]
    fn doubling_pauses_between_the_attempts_and_stops_at_the_last() {
        let policy = Backoff::doubling(5, Duration::from_millis(500), Duration::from_secs(3));
        assert_eq!(ms(policy.pauses()), [500, 1000, 2000, 3000]);
        assert_eq!(ms(Backoff::doubling(1, Duration::from_secs(1), Duration::from_secs(1)).pauses()), [0u128; 0]);
        assert_eq!(Backoff::ONCE.pauses().next(), None);
    }

    #[test]
    fn every_pauses_alike_until_the_caller_stops() {
        let policy = Backoff::every(Duration::from_secs(1));
        assert_eq!(ms(policy.pauses().take(4)), [1000, 1000, 1000, 1000]);
        let growing = Backoff::doubling_until_deadline(Duration::from_millis(500), Duration::from_secs(3));
        assert_eq!(ms(growing.pauses().take(6)), [500, 1000, 2000, 3000, 3000, 3000]);
    }
}

//! A sliding-window rate limiter shared by every table a process replicates, so that
//! concurrent tables together stay inside DAP's per-client limits instead of each
//! discovering them through 429s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// `calls` per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub calls: usize,
    pub per: Duration,
}

impl Limit {
    pub const fn per_minute(calls: usize) -> Self {
        Self { calls, per: Duration::from_secs(60) }
    }
}

/// One window; clones share it.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limit: Limit,
    sent: Arc<Mutex<VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: Limit) -> Self {
        Self { limit, sent: Arc::new(Mutex::new(VecDeque::new())) }
    }

    /// Waits until one more call fits in the window, and records it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= self.limit.per) {
                    sent.pop_front();
                }
                if sent.len() < self.limit.calls {
                    sent.push_back(now);
                    return;
                }
                self.limit.per - now.duration_since(*sent.front().expect("window is full"))
            };
            tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limit: waiting");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_window_admits_n_calls_then_waits() {
        let limiter = RateLimiter::new(Limit { calls: 2, per: Duration::from_secs(60) });
        let start = Instant::now();
        limiter.acquire().await;
        limiter.clone().acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }
}

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
    window: Arc<Mutex<Window>>,
}

#[derive(Debug, Default)]
struct Window {
    sent: VecDeque<Instant>,
    /// After a 429: no call before this.
    held_until: Option<Instant>,
}

impl RateLimiter {
    pub fn new(limit: Limit) -> Self {
        Self { limit, window: Arc::new(Mutex::new(Window::default())) }
    }

    /// Waits until one more call fits in the window, and records it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut window = self.window.lock().await;
                let now = Instant::now();
                let sent = &mut window.sent;
                while sent.front().is_some_and(|t| now.duration_since(*t) >= self.limit.per) {
                    sent.pop_front();
                }
                let full = (sent.len() >= self.limit.calls)
                    .then(|| self.limit.per - now.duration_since(*sent.front().expect("window is full")));
                let held = window.held_until.and_then(|t| t.checked_duration_since(now)).filter(|d| !d.is_zero());
                match full.max(held) {
                    Some(wait) => wait,
                    None => {
                        window.sent.push_back(now);
                        return;
                    }
                }
            };
            tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limit: waiting");
            tokio::time::sleep(wait).await;
        }
    }

    /// DAP answered 429: no call through this window for `wait`.
    pub async fn hold_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut window = self.window.lock().await;
        window.held_until = window.held_until.max(Some(until));
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

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_every_caller_off() {
        let limiter = RateLimiter::new(Limit { calls: 5, per: Duration::from_secs(60) });
        let start = Instant::now();
        limiter.acquire().await;
        limiter.clone().hold_off(Duration::from_secs(30)).await;
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(30), "the window had room, but DAP said wait");
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}

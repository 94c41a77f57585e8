//! The clock, as the commands name things by it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch: a name no earlier change set or run has taken.
pub fn unix_millis() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

//! A client for Instructure's DAP API, the source of Canvas Data 2.
//!
//! It follows the protocol of the official `dap` client 2.3.1 (see `shared/dap-protocol.md`)
//! and improves on it where that client is fragile: downloads are streamed and decoded as
//! multi-member gzip, retries honour `Retry-After`, job creation and table listing share
//! one rate limiter across concurrent tables, and every error carries the DAP error type
//! and uuid.

mod auth;
mod client;
mod error;
mod limiter;
mod tee;
pub mod types;

pub use client::{ClientConfig, Credentials, DapClient, MAX_JOB_ID_LEN, MAX_NAME_LEN, ObjectReader, gunzip};
pub use error::{ApiError, DapError, certificate_refused, chain};
pub use limiter::{Limit, RateLimiter};
pub use tee::{Received, Tee};
pub use types::{CompletedJob, Job, JobStatus, ObjectId, Query, VersionedSchema};

/// The official client's default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api-gateway.instructure.com";

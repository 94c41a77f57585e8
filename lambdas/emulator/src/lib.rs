//! A DAP API emulator: the real wire protocol over HTTP on loopback, served from fixture
//! data that tests (and demos, and benchmarks) put in and change, with faults that can be
//! injected one request at a time.
//!
//! Its answers have exactly the fields the official 2.3.1 client accepts (it rejects extra
//! fields), jobs go waiting -> running -> complete across polls, and downloads are gzip
//! without `Content-Encoding` from pre-signed-style URLs that expire.

pub mod bench;
mod data;
mod faults;
mod routes;

pub use data::{Generated, columns, tsv_field};
use faults::Fault;
pub use faults::{Endpoint, FaultKind};

/// The demo data: a few canvas tables, for `cargo xtask demo` and the end-to-end tests.
pub const DEMO_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use data::TableData;
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// A DAP table schema keyed by `id`, with `values` (the `value` object's properties), of
/// which `required` are required, and DAP's `meta` (`ts`, `action`): the shape of every
/// schema DAP serves, for tests and benchmarks that make tables of their own.
pub fn table_schema(values: Value, required: &[&str]) -> Value {
    serde_json::json!({
        "type": "object",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "additionalProperties": false,
        "required": ["key", "meta"],
        "properties": {
            "key": {"type": "object", "properties": {"id": {"type": "integer", "format": "int64", "description": "Primary key"}}, "additionalProperties": false, "required": ["id"]},
            "value": {"type": "object", "properties": values, "additionalProperties": false, "required": required},
            "meta": {"type": "object", "properties": {"ts": {"type": "string", "format": "date-time"}, "action": {"type": "string", "enum": ["U", "D"]}}, "additionalProperties": false}
        }
    })
}

/// Tunables, settable before or while serving.
#[derive(Clone, Debug)]
pub struct Settings {
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: Duration,
    /// Polls a job answers `waiting`/`running` before `complete`.
    pub polls_before_complete: u32,
    pub rows_per_object: usize,
    pub url_lifetime: Duration,
    /// A pause before each download answers, to make loads slow enough to interrupt.
    pub download_delay: Duration,
    /// DAP's per-client limits on job creation and table listing, each counted on its
    /// own; `None` (the default) admits everything.
    pub rate_limit: Option<RateLimit>,
}

/// `calls` admitted per sliding `window` (DAP: 5 a minute); the rest answer 429 with the
/// `Retry-After` of the oldest call's departure. Tests shrink the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub calls: usize,
    pub window: Duration,
}

impl RateLimit {
    /// DAP's: 5 a minute.
    pub const DAP: Self = Self { calls: 5, window: Duration::from_secs(60) };
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            client_id: "us-east-1#emulator-client".into(),
            client_secret: "emulator-secret".into(),
            token_lifetime: Duration::from_secs(3600),
            polls_before_complete: 2,
            rows_per_object: 1000,
            url_lifetime: Duration::from_secs(900),
            download_delay: Duration::ZERO,
            rate_limit: None,
        }
    }
}

#[derive(Debug)]
struct Job {
    namespace: String,
    table: String,
    polls: u32,
    failure: Option<String>,
    objects: Vec<String>,
    schema_version: i64,
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The query, as DAP answers an identical one with the same job.
    query: String,
}

#[derive(Debug, Default)]
struct Inner {
    settings: Settings,
    tables: BTreeMap<(String, String), TableData>,
    /// Data time: every commit happens at `clock`, which then moves one second on, so a
    /// job cut "now" sees every commit so far and none after.
    clock: Option<DateTime<Utc>>,
    tokens: HashMap<String, SystemTime>,
    jobs: HashMap<String, Job>,
    /// Gzipped object bytes by object id.
    objects: HashMap<String, Arc<Vec<u8>>>,
    /// Signature -> (object id, valid until).
    urls: HashMap<String, (String, Instant)>,
    faults: Vec<Fault>,
    log: Vec<String>,
    /// When admitted calls to each rate-limited endpoint were made, oldest first.
    admitted: HashMap<&'static str, std::collections::VecDeque<Instant>>,
    /// 429s answered because a rate limit was reached (injected ones not counted).
    rate_limited: u32,
    /// When each job creation request arrived, whatever it was answered.
    job_attempts: Vec<Instant>,
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = Arc<Mutex<Inner>>;

impl Inner {
    /// A commit's time: the current data time, which then moves one second on.
    fn tick(&mut self) -> DateTime<Utc> {
        let ts = self.clock.expect("clock is set");
        self.clock = Some(ts + ChronoDuration::seconds(1));
        ts
    }
}

fn lock(state: &Shared) -> MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Emulator {
    /// Serves on `127.0.0.1` at a free port.
    pub async fn start(settings: Settings) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), settings).await
    }

    pub async fn start_on(addr: SocketAddr, settings: Settings) -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(Inner {
            settings,
            clock: Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).single().expect("valid date")),
            ..Inner::default()
        }));
        let app = routes::router(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, server })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn settings(&self) -> Settings {
        lock(&self.state).settings.clone()
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut lock(&self.state).settings);
    }

    /// Adds a table with its first schema (version 1), or a new schema version of it.
    pub fn put_schema(&self, namespace: &str, table: &str, schema: Value) {
        let mut s = lock(&self.state);
        let t = s.tables.entry((namespace.into(), table.into())).or_default();
        t.repeats_keys = namespace == "canvas_logs" && table == "web_logs";
        t.schemas.push(schema);
    }

    /// Commits upserts (`key` and `value` properties merged in one object) and deletes
    /// (key properties only) in one transaction, at the current data time.
    pub fn commit(&self, namespace: &str, table: &str, upserts: Vec<Value>, deletes: Vec<Value>) {
        let mut s = lock(&self.state);
        let ts = s.tick();
        let t = s.tables.get_mut(&(namespace.to_owned(), table.to_owned())).expect("put_schema first");
        let to_map = |v: Value| -> IndexMap<String, Value> {
            v.as_object().expect("records are objects").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for u in upserts {
            t.upsert(ts, to_map(u));
        }
        for d in deletes {
            t.delete(ts, to_map(d));
        }
    }

    /// Loads a fixture file, `{"tables": [{"namespace", "table", "schema", "rows": [...]}]}`:
    /// each table's schema, and its rows committed at once.
    pub fn load_fixture(&self, path: &std::path::Path) -> Result<(), String> {
        let fail = |e: String| format!("fixture {}: {e}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let fixture: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        for t in fixture["tables"].as_array().into_iter().flatten() {
            let (Some(ns), Some(table)) = (t["namespace"].as_str(), t["table"].as_str()) else {
                return Err(fail("every table needs `namespace` and `table`".into()));
            };
            self.put_schema(ns, table, t["schema"].clone());
            self.commit(ns, table, t["rows"].as_array().cloned().unwrap_or_default(), vec![]);
        }
        Ok(())
    }

    /// Adds (or replaces) a generated table with `rows` rows; see [`Generated`].
    pub fn put_generated(&self, namespace: &str, table: &str, schema: Value, generated: Generated) {
        let mut s = lock(&self.state);
        let t = s.tables.entry((namespace.into(), table.into())).or_default();
        t.schemas = vec![schema];
        t.generated = Some(generated);
    }

    /// Makes the next `times` requests to `on` fail with `kind`.
    pub fn inject(&self, on: Endpoint, kind: FaultKind, times: u32) {
        self.inject_after(on, kind, 0, times);
    }

    /// Lets `skip` requests to `on` through, then makes `times` fail with `kind`.
    pub fn inject_after(&self, on: Endpoint, kind: FaultKind, skip: u32, times: u32) {
        lock(&self.state).faults.push(Fault { on, kind, skip, times, table: None });
    }

    /// Makes the next `times` requests to `on` about `table` fail with `kind`; for the
    /// endpoints whose path names the table (`Schema`, `CreateJob`), so that one table of
    /// a run that replicates several at once can be made to fail.
    pub fn inject_on_table(&self, on: Endpoint, table: &str, kind: FaultKind, times: u32) {
        assert!(
            matches!(on, Endpoint::Schema | Endpoint::CreateJob),
            "only schema and job creation requests name their table; {on:?} would never match"
        );
        lock(&self.state).faults.push(Fault { on, kind, skip: 0, times, table: Some(table.into()) });
    }

    /// Forgets every access token issued, as a revocation would.
    pub fn revoke_tokens(&self) {
        lock(&self.state).tokens.clear();
    }

    /// How many requests the rate limit refused with 429 so far.
    pub fn rate_limited(&self) -> u32 {
        lock(&self.state).rate_limited
    }

    /// When each job creation request so far arrived, every attempt counted (refused,
    /// failed or not), in order.
    pub fn job_attempts(&self) -> Vec<Instant> {
        lock(&self.state).job_attempts.clone()
    }

    /// The most job creation requests that arrived within any one `window`: what a
    /// client's limit of so many a window must keep at or under.
    pub fn max_job_attempts_per(&self, window: Duration) -> usize {
        let times = self.job_attempts();
        let mut most = 0;
        let mut first = 0;
        for (last, t) in times.iter().enumerate() {
            while t.duration_since(times[first]) >= window {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// The bytes an object is served as (gzip), by its id.
    pub fn object_bytes(&self, id: &str) -> Option<Vec<u8>> {
        lock(&self.state).objects.get(id).map(|b| b.to_vec())
    }

    /// The requests served so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }
}

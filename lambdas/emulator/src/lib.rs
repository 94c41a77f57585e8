//! A DAP API emulator: the real wire protocol over HTTP on loopback, served from fixture
//! data that tests (and demos, and benchmarks) put in and change, with faults that can be
//! injected one request at a time.
//!
//! Its answers have exactly the fields the official 2.3.1 client accepts (it rejects extra
//! fields), jobs go waiting -> running -> complete across polls, and downloads are gzip
//! without `Content-Encoding` from pre-signed-style URLs that expire.

pub mod bench;
mod data;

pub use data::{Generated, columns, tsv_field};

/// The demo data: a few canvas tables, for `cargo xtask demo` and the end-to-end tests.
pub const DEMO_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use data::TableData;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::StreamExt as _;
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which kind of request a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    ListTables,
    Schema,
    CreateJob,
    GetJob,
    ObjectUrl,
    Download,
}

/// What goes wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// An error status with a DAP error body of this type.
    Status(u16, String),
    /// 429 with `Retry-After` in whole seconds, or (`None`) without the header, as DAP
    /// sometimes answers.
    TooManyRequests { retry_after: Option<u64> },
    /// The next job created (inject on `CreateJob`) fails with this DAP error type.
    FailJob(String),
    /// The pre-signed URL answers 403, as an expired one does.
    ExpiredUrl,
    /// The download stops halfway through the gzip stream.
    TruncatedGzip,
    /// A row of the next job (inject on `CreateJob`) has a field too few.
    MalformedRow,
    /// The first object of the next job (inject on `CreateJob`) has an empty line between
    /// its first two rows.
    EmptyLine,
    /// The next pre-signed URL handed out (inject on `ObjectUrl`) points at a closed port.
    UnreachableUrl,
    /// The download's connection is cut halfway through the body.
    DropConnection,
    /// The download sends half its body, pauses this long, then sends the rest.
    Stall(Duration),
}

#[derive(Clone, Debug)]
struct Fault {
    on: Endpoint,
    kind: FaultKind,
    /// Matching requests to let through first.
    skip: u32,
    times: u32,
    /// Only requests about this table (schema and job creation name it); `None`: any.
    table: Option<String>,
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
        let app = Router::new()
            .route("/ids/auth/login", post(login))
            .route("/dap/query/{ns}/table", get(list_tables))
            .route("/dap/query/{ns}/table/{table}/schema", get(schema))
            .route("/dap/query/{ns}/table/{table}/data", post(create_job))
            .route("/dap/job/{id}", get(get_job))
            .route("/dap/object/url", post(object_urls))
            .route("/files/{*path}", get(download))
            .route("/_emulator/touch/{ns}/{table}", post(touch))
            .with_state(state.clone());
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

    /// The requests served so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "error": { "type": kind, "uuid": uuid::Uuid::new_v4().to_string(), "message": message } });
    (status, axum::Json(body)).into_response()
}

/// Takes one fault on `on` that `accept` takes, if any; `request` is the request line, for
/// faults about one table.
fn take_fault(s: &mut Inner, on: Endpoint, request: &str, accept: fn(&FaultKind) -> bool) -> Option<FaultKind> {
    let about = |f: &Fault| f.table.as_ref().is_none_or(|t| request.contains(&format!("/table/{t}/")));
    let i = s.faults.iter().position(|f| f.on == on && f.times > 0 && accept(&f.kind) && about(f))?;
    if s.faults[i].skip > 0 {
        s.faults[i].skip -= 1;
        return None;
    }
    s.faults[i].times -= 1;
    let kind = s.faults[i].kind.clone();
    s.faults.retain(|f| f.times > 0);
    Some(kind)
}

fn is_http(kind: &FaultKind) -> bool {
    matches!(kind, FaultKind::Status(..) | FaultKind::TooManyRequests { .. })
}

fn any(_: &FaultKind) -> bool {
    true
}

/// The fault's HTTP answer, for faults that are one.
fn fault_response(kind: &FaultKind) -> Option<Response> {
    match kind {
        FaultKind::Status(code, kind) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(error(status, kind, "injected fault"))
        }
        FaultKind::TooManyRequests { retry_after } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too Many Requests");
            if let Some(seconds) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, seconds.to_string().parse().expect("digits"));
            }
            Some(r)
        }
        _ => None,
    }
}

/// Logs the request, checks the bearer token and the rate limit, and applies an HTTP
/// fault; `Some` is the answer that refuses the request. A request an injected fault
/// fails still counts against the rate limit, as every attempt does at DAP.
fn refuse(state: &Shared, on: Endpoint, line: String, headers: &HeaderMap) -> Option<Response> {
    let mut s = lock(state);
    if on == Endpoint::CreateJob {
        s.job_attempts.push(Instant::now());
    }
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let refused = match bearer.and_then(|b| s.tokens.get(b)) {
        Some(exp) if *exp > SystemTime::now() => over_limit(&mut s, on),
        Some(_) => Some(error(StatusCode::UNAUTHORIZED, "AuthenticationError", "The access token has expired")),
        None => Some(error(StatusCode::UNAUTHORIZED, "AuthenticationError", "Missing or unknown access token")),
    };
    // A fault is taken only by a request that got this far, so none is lost to a refusal.
    let fault = if refused.is_none() { take_fault(&mut s, on, &line, is_http) } else { None };
    s.log.push(line);
    refused.or_else(|| fault.as_ref().and_then(fault_response))
}

/// Admits a call to a rate-limited endpoint, or answers 429 and counts it.
fn over_limit(s: &mut Inner, on: Endpoint) -> Option<Response> {
    let quota = match on {
        Endpoint::CreateJob => "create_job",
        Endpoint::ListTables => "list_tables",
        _ => return None,
    };
    let limit = s.settings.rate_limit?;
    let now = Instant::now();
    let admitted = s.admitted.entry(quota).or_default();
    while admitted.front().is_some_and(|t| now.duration_since(*t) >= limit.window) {
        admitted.pop_front();
    }
    if admitted.len() < limit.calls {
        admitted.push_back(now);
        return None;
    }
    let free_in = limit.window - now.duration_since(*admitted.front().expect("the window is full"));
    s.rate_limited += 1;
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too Many Requests");
    let seconds = free_in.as_secs() + u64::from(free_in.subsec_nanos() > 0);
    r.headers_mut().insert(header::RETRY_AFTER, seconds.to_string().parse().expect("digits"));
    Some(r)
}

async fn login(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut s = lock(&state);
    s.log.push("POST /ids/auth/login".into());
    if let Some(r) = take_fault(&mut s, Endpoint::Login, "", is_http).as_ref().and_then(fault_response) {
        return r;
    }
    let expected = format!("{}:{}", s.settings.client_id, s.settings.client_secret);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok());
    if given.as_deref() != Some(expected.as_bytes()) || body.trim() != "grant_type=client_credentials" {
        return error(StatusCode::UNAUTHORIZED, "AuthenticationError", "Invalid client credentials");
    }
    let exp = SystemTime::now() + s.settings.token_lifetime;
    let exp_secs = exp.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(json!({ "exp": exp_secs, "sub": s.settings.client_id }).to_string());
    let signature = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    let token = format!("{header}.{claims}.{signature}");
    s.tokens.insert(token.clone(), exp);
    let body = json!({
        "access_token": token,
        "expires_in": s.settings.token_lifetime.as_secs(),
        "scope": "urn:canvas:data:emulator",
        "token_type": "Bearer",
    });
    axum::Json(body).into_response()
}

async fn list_tables(State(state): State<Shared>, Path(ns): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&state, Endpoint::ListTables, format!("GET /dap/query/{ns}/table"), &headers) {
        return r;
    }
    let s = lock(&state);
    let tables: Vec<&String> = s.tables.keys().filter(|(n, _)| *n == ns).map(|(_, t)| t).collect();
    if tables.is_empty() {
        return error(StatusCode::NOT_FOUND, "NotFound", &format!("Namespace '{ns}' not found"));
    }
    axum::Json(json!({ "tables": tables })).into_response()
}

async fn schema(
    State(state): State<Shared>,
    Path((ns, table)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse(&state, Endpoint::Schema, format!("GET /dap/query/{ns}/table/{table}/schema"), &headers) {
        return r;
    }
    let s = lock(&state);
    match s.tables.get(&(ns.clone(), table.clone())) {
        Some(t) => axum::Json(json!({ "schema": t.schema(), "version": t.version() })).into_response(),
        None => error(StatusCode::NOT_FOUND, "NotFound", &format!("Table '{ns}.{table}' not found")),
    }
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(text.as_bytes()).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

async fn create_job(
    State(state): State<Shared>,
    Path((ns, table)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(r) =
        refuse(&state, Endpoint::CreateJob, format!("POST /dap/query/{ns}/table/{table}/data {body}"), &headers)
    {
        return r;
    }
    let query: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "ValidationError", &format!("invalid JSON: {e}"));
        }
    };
    let format = match query["format"].as_str() {
        Some("tsv") => "tsv",
        Some("jsonl") => "json",
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                &format!("format {other:?}: this emulator serves tsv and jsonl"),
            );
        }
    };
    let since = match query.get("since").map(|s| s.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok())) {
        None => None,
        Some(Some(s)) => Some(s.with_timezone(&Utc)),
        Some(None) => {
            return error(StatusCode::BAD_REQUEST, "ValidationError", "`since` is not an RFC 3339 date-time");
        }
    };
    let mut s = lock(&state);
    let request = format!("POST /dap/query/{ns}/table/{table}/data");
    let failure = match take_fault(&mut s, Endpoint::CreateJob, &request, |k| matches!(k, FaultKind::FailJob(_))) {
        Some(FaultKind::FailJob(kind)) => Some(kind),
        _ => None,
    };
    let damage = take_fault(&mut s, Endpoint::CreateJob, &request, |k| {
        matches!(k, FaultKind::MalformedRow | FaultKind::EmptyLine)
    });
    let until = s.clock.expect("clock is set");
    let per_object = s.settings.rows_per_object.max(1);
    // An identical query while the data is unchanged gets the existing job back.
    let query_key = format!("{ns}.{table} {query} {until}");
    let polls = s.settings.polls_before_complete;
    if damage.is_none()
        && failure.is_none()
        && let Some((id, job)) = s.jobs.iter().find(|(_, j)| j.query == query_key && j.failure.is_none())
    {
        return axum::Json(job_json(id, job, polls)).into_response();
    }
    let Some(t) = s.tables.get(&(ns.clone(), table.clone())) else {
        return error(StatusCode::NOT_FOUND, "NotFound", &format!("Table '{ns}.{table}' not found"));
    };
    let schema_version = t.version();
    let id = uuid::Uuid::new_v4().to_string();
    let mut objects = Vec::new();
    let mut files = Vec::new();
    let mut add = |text: String| {
        let i = objects.len();
        let object_id = format!("{id}/part-{i:05}-{}.{format}.gz", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        files.push((object_id.clone(), Arc::new(gzip(&text))));
        objects.push(object_id);
    };
    if format == "tsv" {
        t.write_objects(since, until, per_object, damage.as_ref(), &mut add);
    } else if t.generated.is_some() {
        return error(StatusCode::BAD_REQUEST, "ValidationError", "generated tables are served as tsv only");
    } else {
        t.write_jsonl(since, until, per_object, &mut add);
    }
    s.objects.extend(files);
    let expires_at = Utc::now() + ChronoDuration::hours(24);
    let job = Job {
        namespace: ns,
        table,
        polls: 0,
        failure,
        objects,
        schema_version,
        since,
        until,
        expires_at,
        query: query_key,
    };
    let answer = job_json(&id, &job, s.settings.polls_before_complete);
    s.jobs.insert(id, job);
    axum::Json(answer).into_response()
}

fn job_json(id: &str, job: &Job, polls_before_complete: u32) -> Value {
    let expires_at = data::format_ts(&job.expires_at);
    if job.polls < polls_before_complete {
        let status = if job.polls == 0 { "waiting" } else { "running" };
        return json!({ "id": id, "status": status, "expires_at": expires_at });
    }
    if let Some(kind) = &job.failure {
        return json!({
            "id": id, "status": "failed", "expires_at": expires_at,
            "error": { "type": kind, "uuid": uuid::Uuid::new_v4().to_string(), "message": format!("The query of {}.{} failed", job.namespace, job.table) },
        });
    }
    let objects: Vec<Value> = job.objects.iter().map(|o| json!({ "id": o })).collect();
    match job.since {
        None => json!({
            "id": id, "status": "complete", "expires_at": expires_at, "objects": objects,
            "schema_version": job.schema_version, "at": data::format_ts(&job.until),
        }),
        Some(since) => json!({
            "id": id, "status": "complete", "expires_at": expires_at, "objects": objects,
            "schema_version": job.schema_version, "since": data::format_ts(&since), "until": data::format_ts(&job.until),
        }),
    }
}

async fn get_job(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&state, Endpoint::GetJob, format!("GET /dap/job/{id}"), &headers) {
        return r;
    }
    let mut s = lock(&state);
    let polls = s.settings.polls_before_complete;
    match s.jobs.get_mut(&id) {
        Some(job) => {
            job.polls += 1;
            axum::Json(job_json(&id, job, polls)).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "NotFound", &format!("Job '{id}' not found")),
    }
}

/// Test control: the next revision of a generated table.
async fn touch(State(state): State<Shared>, Path((ns, table)): Path<(String, String)>) -> Response {
    let mut s = lock(&state);
    s.tick();
    match s.tables.get_mut(&(ns, table)).and_then(|t| t.generated.as_mut()) {
        Some(g) => {
            g.revision += 1;
            axum::Json(json!({ "revision": g.revision })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "NotFound", "no generated table of that name"),
    }
}

async fn object_urls(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if let Some(r) = refuse(&state, Endpoint::ObjectUrl, format!("POST /dap/object/url {body}"), &headers) {
        return r;
    }
    let unreachable =
        take_fault(&mut lock(&state), Endpoint::ObjectUrl, "", |k| *k == FaultKind::UnreachableUrl).is_some();
    let Ok(ids) = serde_json::from_str::<Vec<Value>>(&body) else {
        return error(StatusCode::BAD_REQUEST, "ValidationError", "expected [{\"id\": ...}]");
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    let mut s = lock(&state);
    let lifetime = s.settings.url_lifetime;
    let mut urls = serde_json::Map::new();
    for id in ids.iter().filter_map(|v| v["id"].as_str()) {
        if !s.objects.contains_key(id) {
            return error(StatusCode::NOT_FOUND, "NotFound", &format!("Object '{id}' not found"));
        }
        let sig = uuid::Uuid::new_v4().simple().to_string();
        s.urls.insert(sig.clone(), (id.to_owned(), Instant::now() + lifetime));
        // Port 9 (discard) on loopback: nothing listens there.
        let host = if unreachable { "127.0.0.1:9" } else { host.as_str() };
        urls.insert(id.to_owned(), json!({ "url": format!("http://{host}/files/{id}?X-Amz-Signature={sig}") }));
    }
    axum::Json(json!({ "urls": urls })).into_response()
}

async fn download(
    State(state): State<Shared>,
    Path(path): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let delay = lock(&state).settings.download_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = lock(&state);
    s.log.push(format!("GET /files/{path}"));
    let fault = take_fault(&mut s, Endpoint::Download, "", any);
    if let Some(r) = fault.as_ref().and_then(fault_response) {
        return r;
    }
    let valid = params
        .get("X-Amz-Signature")
        .and_then(|sig| s.urls.get(sig))
        .filter(|(id, until)| *id == path && *until > Instant::now())
        .is_some();
    if !valid || fault == Some(FaultKind::ExpiredUrl) {
        // What S3 answers for an expired or tampered pre-signed URL.
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        return (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/xml")], xml).into_response();
    }
    let Some(bytes) = s.objects.get(&path).cloned() else {
        return (StatusCode::NOT_FOUND, "no such object").into_response();
    };
    let half = bytes.len() / 2;
    let body = match fault {
        Some(FaultKind::TruncatedGzip) => Body::from(bytes[..half].to_vec()),
        Some(FaultKind::DropConnection) => {
            let parts: [Result<Vec<u8>, std::io::Error>; 2] =
                [Ok(bytes[..half].to_vec()), Err(std::io::Error::other("injected: connection dropped"))];
            Body::from_stream(futures_util::stream::iter(parts))
        }
        Some(FaultKind::Stall(pause)) => {
            let (first, rest) = (bytes[..half].to_vec(), bytes[half..].to_vec());
            let later = async move {
                tokio::time::sleep(pause).await;
                Ok::<_, std::io::Error>(rest)
            };
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) })
                .chain(futures_util::stream::once(later));
            Body::from_stream(stream)
        }
        _ => Body::from(bytes.as_ref().clone()),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "binary/octet-stream")], body).into_response()
}

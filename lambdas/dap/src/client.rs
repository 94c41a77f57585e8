//! The HTTP client: one per process, cheap to clone, shared by every table.

use crate::auth::{self, Token, TokenResponse};
use crate::error::{ApiError, DapError};
use crate::limiter::{Limit, RateLimiter};
use crate::tee::Tee;
use crate::types::{CompletedJob, ErrorBody, Job, JobStatus, ObjectId, Query, TableList, UrlResponse, VersionedSchema};
use async_compression::tokio::bufread::GzipDecoder;
use contract::Backoff;
use futures_util::TryStreamExt;
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, BufReader};
use tokio::sync::Mutex;
use tokio_util::io::StreamReader;

/// The DAP client id and secret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("client_id", &self.client_id).field("client_secret", &"<redacted>").finish()
    }
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub base_url: String,
    pub credentials: Credentials,
    /// Attempts per request, the first included, for 429, 5xx and lost connections, and
    /// the pauses after a 5xx or a lost connection (a 429 waits what DAP asks instead).
    pub retry: Backoff,
    /// The longest `Retry-After` honoured; longer ones end the retries.
    pub max_retry_after: Duration,
    /// The pause after a 429 without `Retry-After` (the official client's 30 s).
    pub default_retry_after: Duration,
    /// Pause between job status polls.
    pub poll_interval: Duration,
    /// How long a job may stay waiting or running.
    pub job_timeout: Duration,
    /// Shared limits: DAP allows 5 job creations and 5 table listings a minute per client.
    pub job_limit: Limit,
    pub list_limit: Limit,
    /// The longest wait for the next bytes of an answer.
    pub timeout: Duration,
    /// The longest an API request may take in all, answer included.
    pub request_timeout: Duration,
    /// The longest an object download may take in all (a call with a budget ends it sooner).
    pub download_timeout: Duration,
}

impl ClientConfig {
    pub fn new(base_url: &str, credentials: Credentials) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            retry: Backoff::doubling(5, Duration::from_millis(500), Duration::from_secs(60)),
            max_retry_after: Duration::from_secs(120),
            default_retry_after: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            job_timeout: Duration::from_secs(3600),
            job_limit: Limit::per_minute(5),
            list_limit: Limit::per_minute(5),
            timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(180),
            download_timeout: Duration::from_secs(3600),
        }
    }
}

/// A decoded object: TSV lines, gunzipped as they arrive.
pub type ObjectReader = Pin<Box<dyn AsyncBufRead + Send>>;

#[derive(Clone, Debug)]
pub struct DapClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    token: Mutex<Option<Token>>,
    jobs: RateLimiter,
    lists: RateLimiter,
    traceparent: String,
}

const USER_AGENT: &str = concat!("cd2-aws/", env!("CARGO_PKG_VERSION"));

fn describe_query(namespace: &str, table: &str, incremental: bool) -> String {
    format!("{} of {namespace}.{table}", if incremental { "incremental query" } else { "snapshot" })
}

/// The longest namespace or table name taken: PostgreSQL's identifier limit (63 bytes),
/// since each becomes a schema or a table of the replica.
pub const MAX_NAME_LEN: usize = 63;

/// Namespaces and table names go into URL paths and become PostgreSQL identifiers; DAP's
/// are short lower-case identifiers.
fn check_name(kind: &str, name: &str) -> Result<(), DapError> {
    let ok =
        !name.is_empty() && name.len() <= MAX_NAME_LEN && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DapError::UnexpectedResponse {
            what: format!("{kind} `{name}`"),
            detail: format!("a DAP name holds only letters, digits and `_`, at most {MAX_NAME_LEN} of them"),
        })
    }
}

/// The longest job id taken: DAP's are uuids. Ids go into URL paths and the workflow's
/// state (`contract::MAX_DAP_ID` is at least this).
pub const MAX_JOB_ID_LEN: usize = 64;

/// A job id, from DAP or from a saved job, before it goes into a path.
fn check_job_id(id: &str) -> Result<(), DapError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_JOB_ID_LEN
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DapError::UnexpectedResponse {
            what: "a job".into(),
            detail: format!(
                "job id `{}` is not an id (letters, digits, `-` and `_`, at most {MAX_JOB_ID_LEN})",
                id.chars().take(80).collect::<String>()
            ),
        })
    }
}

/// The path, body and description of a job creation.
fn job_request(namespace: &str, table: &str, query: &Query) -> Result<(String, Value, String), DapError> {
    check_name("namespace", namespace)?;
    check_name("table", table)?;
    let what = describe_query(namespace, table, query.since.is_some());
    let path = format!("/dap/query/{namespace}/table/{table}/data");
    Ok((path, serde_json::to_value(query).expect("queries serialize"), what))
}

/// Whether a request is retried by the client itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempts {
    /// Up to `retry.attempts` for 429, 5xx and lost connections; one new login for a refused token.
    Retried,
    /// Exactly one request; the caller retries.
    One,
}

impl DapClient {
    pub fn new(config: ClientConfig) -> Result<Self, DapError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(config.timeout)
            .build()
            .map_err(|e| DapError::Transport {
                what: "client setup".into(),
                url: config.base_url.clone(),
                source: e.without_url(),
            })?;
        let traceparent = format!("00-{}-0000000000000001-01", uuid::Uuid::new_v4().simple());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                jobs: RateLimiter::new(config.job_limit),
                lists: RateLimiter::new(config.list_limit),
                config,
                token: Mutex::new(None),
                traceparent,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Logs in (or reuses the token), so bad credentials show before any table starts.
    pub async fn check_credentials(&self) -> Result<(), DapError> {
        self.token().await.map(drop)
    }

    /// `GET /dap/query/{ns}/table`.
    pub async fn list_tables(&self, namespace: &str) -> Result<Vec<String>, DapError> {
        check_name("namespace", namespace)?;
        let what = format!("list the tables of `{namespace}`");
        let path = format!("/dap/query/{namespace}/table");
        let list: TableList =
            self.call(Method::GET, &path, None, &what, Some(&self.inner.lists), Attempts::Retried).await?;
        Ok(list.tables)
    }

    /// `GET /dap/query/{ns}/table/{table}/schema`.
    pub async fn schema(&self, namespace: &str, table: &str) -> Result<VersionedSchema, DapError> {
        check_name("namespace", namespace)?;
        check_name("table", table)?;
        let what = format!("get the schema of {namespace}.{table}");
        let path = format!("/dap/query/{namespace}/table/{table}/schema");
        self.call(Method::GET, &path, None, &what, None, Attempts::Retried).await
    }

    /// Starts (or finds, for an identical query) a job and waits for it to complete.
    pub async fn run_job(&self, namespace: &str, table: &str, query: &Query) -> Result<CompletedJob, DapError> {
        let job = self.start_job(namespace, table, query).await?;
        let what = describe_query(namespace, table, query.since.is_some());
        Ok(self.wait(job, &what, None).await?.expect("no deadline, so the wait ends complete"))
    }

    /// Starts (or finds, for an identical query) a job; see [`resume_job`](Self::resume_job).
    /// Every attempt, retries included, takes a slot of this process's job limiter.
    pub async fn start_job(&self, namespace: &str, table: &str, query: &Query) -> Result<Job, DapError> {
        let (path, body, what) = job_request(namespace, table, query)?;
        let job: Job =
            self.call(Method::POST, &path, Some(body), &what, Some(&self.inner.jobs), Attempts::Retried).await?;
        check_job_id(&job.id).map(|()| job)
    }

    /// One attempt at starting a job, with no retry of its own: DAP counts every attempt
    /// against the client's 5 job creations a minute, so a caller that shares that limit
    /// with other processes takes a slot before each attempt and decides itself whether a
    /// failure deserves another ([`DapError::is_transient`]; a 429 says how long to hold
    /// off in [`DapError::RateLimited`]'s `retry_after`). An access token DAP refuses is
    /// forgotten, so the next attempt logs in again.
    pub async fn try_start_job(&self, namespace: &str, table: &str, query: &Query) -> Result<Job, DapError> {
        let (path, body, what) = job_request(namespace, table, query)?;
        let job: Job = self.call(Method::POST, &path, Some(body), &what, None, Attempts::One).await?;
        check_job_id(&job.id).map(|()| job)
    }

    /// Polls job `id` until it completes, or until `deadline`, when it answers `None`
    /// (the job goes on at DAP; resume it later, from any process).
    pub async fn resume_job(
        &self,
        namespace: &str,
        table: &str,
        id: &str,
        incremental: bool,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<CompletedJob>, DapError> {
        let what = describe_query(namespace, table, incremental);
        let job = self.job(id, &what).await?;
        self.wait(job, &what, deadline).await
    }

    async fn wait(
        &self,
        mut job: Job,
        what: &str,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<CompletedJob>, DapError> {
        let started = tokio::time::Instant::now();
        // Quick first polls for small jobs, then the official client's interval.
        let interval = self.inner.config.poll_interval;
        let mut pauses = Backoff::doubling_until_deadline(interval / 8, interval).pauses();
        loop {
            match job.status {
                JobStatus::Complete => break,
                JobStatus::Failed => {
                    return Err(DapError::JobFailed {
                        job_id: job.id,
                        what: what.into(),
                        error: job.error.unwrap_or_else(|| ApiError { kind: "Failed".into(), ..ApiError::default() }),
                    });
                }
                JobStatus::Waiting | JobStatus::Running => {}
            }
            if started.elapsed() > self.inner.config.job_timeout {
                return Err(DapError::JobTimeout { job_id: job.id, what: what.into(), waited: started.elapsed() });
            }
            let pause = pauses.next().unwrap_or(interval);
            if deadline.is_some_and(|d| std::time::Instant::now() + pause > d) {
                tracing::info!(job = %job.id, "job still running at the deadline");
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            job = self.job(&job.id, what).await?;
        }
        let objects = match job.objects.take() {
            Some(o) => o,
            None => self.job(&job.id, what).await?.objects.unwrap_or_default(),
        };
        let until = job.until.or(job.at).ok_or_else(|| DapError::UnexpectedResponse {
            what: what.into(),
            detail: format!("complete job {} has neither `at` nor `until`", job.id),
        })?;
        tracing::info!(job = %job.id, objects = objects.len(), "job complete");
        Ok(Some(CompletedJob {
            id: job.id,
            objects,
            schema_version: job.schema_version,
            until,
            since: job.since,
            expires_at: job.expires_at,
        }))
    }

    async fn job(&self, id: &str, what: &str) -> Result<Job, DapError> {
        check_job_id(id)?;
        let path = format!("/dap/job/{id}");
        self.call(Method::GET, &path, None, what, None, Attempts::Retried).await
    }

    /// Resolves an object id to its pre-signed URL (valid about 15 minutes).
    pub async fn object_url(&self, object: &ObjectId) -> Result<String, DapError> {
        let what = format!("resolve object {}", object.id);
        let body = serde_json::json!([{ "id": object.id }]);
        let mut answer: UrlResponse =
            self.call(Method::POST, "/dap/object/url", Some(body), &what, None, Attempts::Retried).await?;
        answer.urls.remove(&object.id).map(|u| u.url).ok_or_else(|| DapError::UnexpectedResponse {
            what,
            detail: "the answer has no URL for this object".into(),
        })
    }

    /// Opens an object for reading: resolves its URL just before the download, retries
    /// 5xx and lost connections, and decodes gzip (every member) as bytes arrive.
    pub async fn open_object(&self, object: &ObjectId) -> Result<ObjectReader, DapError> {
        self.open_object_teed(object, None).await
    }

    /// [`DapClient::open_object`], with the body's bytes as received also sent to `tee`
    /// (see [`crate::Received`]); without one, the download is exactly `open_object`'s.
    pub async fn open_object_teed(&self, object: &ObjectId, mut tee: Option<Tee>) -> Result<ObjectReader, DapError> {
        let cfg = &self.inner.config;
        let mut pauses = cfg.retry.pauses();
        let mut attempt = 0;
        // The last attempt's URL was refused with a 403.
        let mut refused_before = false;
        loop {
            attempt += 1;
            // The URL is pre-signed: it is a credential, and never goes into an error or a log.
            let url = self.object_url(object).await?;
            let sent = self
                .inner
                .http
                .get(&url)
                .header("traceparent", &self.inner.traceparent)
                .timeout(cfg.download_timeout)
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => {
                    let stream = r.bytes_stream().map_err(|e| std::io::Error::other(e.without_url()));
                    return Ok(match tee.take() {
                        None => decoded(stream),
                        Some(tee) => decoded(crate::tee::teed(stream, tee)),
                    });
                }
                // An expired or refused URL: a fresh one may work; when it does not either,
                // something on the way refuses them all.
                Ok(r) if r.status() == StatusCode::FORBIDDEN => {
                    if refused_before {
                        return Err(DapError::DownloadRefused { object: object.id.clone() });
                    }
                    refused_before = true;
                    format!("HTTP 403 for the pre-signed URL of {}", object.id)
                }
                Ok(r) if r.status().is_server_error() => {
                    refused_before = false;
                    format!("HTTP {}", r.status())
                }
                Ok(r) => {
                    return Err(DapError::Download {
                        object: object.id.clone(),
                        detail: format!("HTTP {}", r.status()),
                    });
                }
                Err(e) => {
                    if let Some(detail) = crate::error::certificate_refused(&e) {
                        let what = format!("downloading {}", object.id);
                        return Err(DapError::Certificate { what, url: "S3".into(), detail });
                    }
                    refused_before = false;
                    format!("connection: {}", describe_transport(e.without_url()))
                }
            };
            let Some(pause) = pauses.next() else {
                return Err(DapError::Download {
                    object: object.id.clone(),
                    detail: format!("{failure}, after {attempt} attempts"),
                });
            };
            tracing::warn!(object = %object.id, attempt, %failure, "download failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn token(&self) -> Result<String, DapError> {
        let mut slot = self.inner.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| t.fresh()) {
            return Ok(t.bearer.clone());
        }
        let token = self.login().await?;
        let bearer = token.bearer.clone();
        *slot = Some(token);
        Ok(bearer)
    }

    async fn login(&self) -> Result<Token, DapError> {
        let cfg = &self.inner.config;
        let url = format!("{}/ids/auth/login", cfg.base_url);
        let what = "log in";
        let mut pauses = cfg.retry.pauses();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .inner
                .http
                .post(&url)
                .basic_auth(&cfg.credentials.client_id, Some(&cfg.credentials.client_secret))
                .header("traceparent", &self.inner.traceparent)
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .timeout(cfg.request_timeout)
                .send()
                .await;
            match self.classify(sent, &url, what, attempt, pauses.next()).await? {
                Outcome::Retry(wait) | Outcome::HoldOff(wait) => tokio::time::sleep(wait).await,
                Outcome::Done(body) => {
                    let t: TokenResponse = parse(&body, what, Answer::Secret)?;
                    let expires = auth::expiry(&t.access_token).ok_or_else(|| DapError::UnexpectedResponse {
                        what: what.into(),
                        detail: "the access token is not a JWT with an `exp` claim".into(),
                    })?;
                    return Ok(Token { bearer: t.access_token, expires });
                }
            }
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
        limiter: Option<&RateLimiter>,
        attempts: Attempts,
    ) -> Result<T, DapError> {
        let url = format!("{}{path}", self.inner.config.base_url);
        let mut pauses = match attempts {
            Attempts::Retried => self.inner.config.retry,
            Attempts::One => Backoff::ONCE,
        }
        .pauses();
        let mut attempt = 0;
        let mut relogged = false;
        loop {
            attempt += 1;
            if let Some(l) = limiter {
                l.acquire().await;
            }
            let bearer = self.token().await?;
            let mut request = self
                .inner
                .http
                .request(method.clone(), &url)
                .timeout(self.inner.config.request_timeout)
                .bearer_auth(bearer)
                .header("traceparent", &self.inner.traceparent);
            if let Some(b) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(b).expect("JSON values serialize"));
            }
            match self.classify(request.send().await, &url, what, attempt, pauses.next()).await {
                Ok(Outcome::HoldOff(wait)) => {
                    // DAP says the client's limit is spent: no call of this process for a while.
                    if let Some(l) = limiter {
                        l.hold_off(wait).await;
                    }
                    tokio::time::sleep(wait).await
                }
                Ok(Outcome::Retry(wait)) => tokio::time::sleep(wait).await,
                // Pre-signed URLs are credentials: an answer holding them is never quoted.
                Ok(Outcome::Done(bytes)) => {
                    let answer = if path == "/dap/object/url" { Answer::Secret } else { Answer::Quotable };
                    return parse(&bytes, what, answer);
                }
                Err(e @ DapError::RateLimited { retry_after: Some(wait), .. }) => {
                    // Too long to wait out here, but no call of this process should go sooner.
                    if let Some(l) = limiter {
                        l.hold_off(wait).await;
                    }
                    return Err(e);
                }
                Err(e @ DapError::Authentication(_)) => {
                    // A token the server no longer takes (revoked, or a clock off): log in
                    // again once; only a refused fresh token means bad credentials.
                    *self.inner.token.lock().await = None;
                    if relogged || attempts == Attempts::One {
                        return Err(e);
                    }
                    relogged = true;
                    tracing::warn!(%what, "DAP refused the access token; logging in again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Turns one HTTP exchange into a body, a retry after a pause, or a typed error.
    /// `pause` is the retry policy's pause before the next attempt, `None` when this
    /// attempt (number `attempt`) is the last.
    async fn classify(
        &self,
        sent: Result<Response, reqwest::Error>,
        url: &str,
        what: &str,
        attempt: u32,
        pause: Option<Duration>,
    ) -> Result<Outcome, DapError> {
        let cfg = &self.inner.config;
        let last = pause.is_none();
        let backoff = pause.unwrap_or_default();
        let response = match sent {
            Ok(r) => r,
            Err(e) if let Some(detail) = crate::error::certificate_refused(&e) => {
                return Err(DapError::Certificate { what: what.into(), url: url.into(), detail });
            }
            Err(e) if !last && (e.is_connect() || e.is_timeout() || e.is_request()) => {
                tracing::warn!(%what, attempt, error = %describe_transport(e.without_url()), "DAP request failed; retrying");
                return Ok(Outcome::Retry(backoff));
            }
            Err(e) => {
                return Err(DapError::Transport { what: what.into(), url: url.into(), source: e.without_url() });
            }
        };
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let wait = retry_after.unwrap_or(cfg.default_retry_after);
            if last || wait > cfg.max_retry_after {
                return Err(DapError::RateLimited { what: what.into(), attempts: attempt, retry_after });
            }
            tracing::warn!(%what, attempt, wait_s = wait.as_secs(), "DAP answered 429; waiting");
            return Ok(Outcome::HoldOff(wait));
        }
        if status.is_server_error() && !last {
            tracing::warn!(%what, attempt, %status, "DAP server error; retrying");
            return Ok(Outcome::Retry(backoff));
        }
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().unwrap_or_default().trim() == "application/json");
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if !last => {
                tracing::warn!(%what, attempt, error = %describe_transport(e.without_url()), "DAP answer cut off; retrying");
                return Ok(Outcome::Retry(backoff));
            }
            Err(e) => {
                return Err(DapError::Transport { what: what.into(), url: url.into(), source: e.without_url() });
            }
        };
        if status.is_success() {
            if !json {
                return Err(DapError::UnexpectedResponse {
                    what: what.into(),
                    detail: "the answer is not application/json".into(),
                });
            }
            return Ok(Outcome::Done(body));
        }
        let error = serde_json::from_slice::<ErrorBody>(&body).map(|b| b.error).unwrap_or_else(|_| ApiError {
            kind: "ServerError".into(),
            uuid: String::new(),
            message: snippet(&body),
        });
        Err(match status {
            StatusCode::UNAUTHORIZED => DapError::Authentication(error),
            StatusCode::FORBIDDEN => DapError::Forbidden { what: what.into(), error },
            StatusCode::NOT_FOUND => DapError::NotFound { what: what.into(), error },
            s => DapError::Api { status: s.as_u16(), what: what.into(), error },
        })
    }
}

enum Outcome {
    Done(bytes::Bytes),
    /// A passing failure: try again after the pause.
    Retry(Duration),
    /// A 429: try again after the pause, which DAP asked for (or the default).
    HoldOff(Duration),
}

/// Whether an answer may be quoted in an error: a token or a pre-signed URL may not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Quotable,
    Secret,
}

/// A body decoded as gzip (every member) as its bytes arrive.
fn decoded<S>(body: S) -> ObjectReader
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
{
    gunzip(StreamReader::new(body))
}

/// An object's bytes as DAP serves them (gzip, one member or several), decoded as they
/// are read: a download, or a copy in the archive.
pub fn gunzip<R: AsyncBufRead + Send + 'static>(gzip: R) -> ObjectReader {
    let mut decoder = GzipDecoder::new(gzip);
    decoder.multiple_members(true);
    Box::pin(BufReader::with_capacity(64 * 1024, decoder))
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str, answer: Answer) -> Result<T, DapError> {
    serde_json::from_slice(body).map_err(|e| DapError::UnexpectedResponse {
        what: what.into(),
        detail: match answer {
            Answer::Quotable => format!("{e}; body starts: {}", snippet(body)),
            // serde_json's message names a position and what it expected, never the text.
            Answer::Secret => format!("{e} (the answer holds credentials, so it is not shown)"),
        },
    })
}

/// A transport error with its causes ("error sending request: connection refused"), without
/// the URL (strip it with `without_url` first: a pre-signed URL is a credential).
fn describe_transport(e: reqwest::Error) -> String {
    crate::error::chain(&e)
}

/// The start of a body for an error message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_holding_credentials_are_never_quoted() {
        let body = br#"{"urls": {"part-1": "https://bucket.s3.amazonaws.com/part-1?X-Amz-Signature=abc123"#;
        let err = parse::<UrlResponse>(body, "resolve object part-1", Answer::Secret).unwrap_err().to_string();
        assert!(!err.contains("X-Amz-Signature") && !err.contains("abc123"), "{err}");
        assert!(err.contains("not shown"), "{err}");
        let err = parse::<UrlResponse>(b"<html>oops</html>", "list", Answer::Quotable).unwrap_err().to_string();
        assert!(err.contains("<html>oops"), "other answers are quoted to help: {err}");
    }
}

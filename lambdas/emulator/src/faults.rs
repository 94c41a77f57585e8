//! What refuses or breaks a request on purpose: the faults a test injects, DAP's rate
//! limits, and access tokens that are missing or expired.

use crate::{Inner, Shared, lock};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};

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
pub(crate) struct Fault {
    pub(crate) on: Endpoint,
    pub(crate) kind: FaultKind,
    /// Matching requests to let through first.
    pub(crate) skip: u32,
    pub(crate) times: u32,
    /// Only requests about this table (schema and job creation name it); `None`: any.
    pub(crate) table: Option<String>,
}

/// An answer with DAP's error body (its type, a fresh uuid, the message), as DAP refuses.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "error": { "type": kind, "uuid": uuid::Uuid::new_v4().to_string(), "message": message } });
    (status, axum::Json(body)).into_response()
}

/// Takes one fault on `on` that `accept` takes, if any; `request` is the request line, for
/// faults about one table.
pub(crate) fn take_fault(
    s: &mut Inner,
    on: Endpoint,
    request: &str,
    accept: fn(&FaultKind) -> bool,
) -> Option<FaultKind> {
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

pub(crate) fn is_http(kind: &FaultKind) -> bool {
    matches!(kind, FaultKind::Status(..) | FaultKind::TooManyRequests { .. })
}

pub(crate) fn any(_: &FaultKind) -> bool {
    true
}

/// The fault's HTTP answer, for faults that are one.
pub(crate) fn fault_response(kind: &FaultKind) -> Option<Response> {
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
pub(crate) fn refuse(state: &Shared, on: Endpoint, line: String, headers: &HeaderMap) -> Option<Response> {
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
pub(crate) fn over_limit(s: &mut Inner, on: Endpoint) -> Option<Response> {
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

//! DAP's API as the emulator answers it: one handler per route, over the shared state.

use crate::faults::{Endpoint, FaultKind, any, error, fault_response, is_http, refuse, take_fault};
use crate::{Job, Shared, data, lock};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The routes of the API (and the emulator's own, under `/_emulator`).
pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/ids/auth/login", post(login))
        .route("/dap/query/{ns}/table", get(list_tables))
        .route("/dap/query/{ns}/table/{table}/schema", get(schema))
        .route("/dap/query/{ns}/table/{table}/data", post(create_job))
        .route("/dap/job/{id}", get(get_job))
        .route("/dap/object/url", post(object_urls))
        .route("/files/{*path}", get(download))
        .route("/_emulator/touch/{ns}/{table}", post(touch))
        .with_state(state)
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

//! The wire types of the DAP API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ApiError;

/// `GET /dap/query/{ns}/table/{table}/schema`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct VersionedSchema {
    pub schema: Value,
    pub version: i64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub id: String,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Waiting,
    Running,
    Complete,
    Failed,
}

/// A job as the API returns it; which fields are present tells the kind.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Job {
    pub id: String,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<ObjectId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// A complete job: what a loader needs, small enough to keep in a cursor.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct CompletedJob {
    pub id: String,
    pub objects: Vec<ObjectId>,
    pub schema_version: Option<i64>,
    /// Snapshot: the time the data is current to; incremental: `until`.
    pub until: DateTime<Utc>,
    pub since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The body of `POST .../data`: a snapshot when `since` is absent.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Query {
    pub format: &'static str,
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_ts")]
    pub since: Option<DateTime<Utc>>,
}

impl Query {
    /// TSV, condensed: what the replicator loads (as the official initdb/syncdb ask).
    pub fn snapshot() -> Self {
        Self { format: "tsv", mode: "condensed", since: None }
    }

    pub fn incremental(since: DateTime<Utc>) -> Self {
        Self { format: "tsv", mode: "condensed", since: Some(since) }
    }
}

/// `2024-05-02T10:00:00Z`, or with microseconds when there are any, as the official client writes.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    if ts.timestamp_subsec_micros() == 0 {
        ts.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

fn ser_ts<S: serde::Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => s.serialize_str(&format_ts(ts)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TableList {
    pub tables: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UrlEntry {
    pub url: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UrlResponse {
    pub urls: std::collections::HashMap<String, UrlEntry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn queries_serialize_like_the_official_client() {
        let since = Utc.with_ymd_and_hms(2024, 5, 2, 10, 0, 0).unwrap() + chrono::Duration::microseconds(123456);
        assert_eq!(serde_json::to_string(&Query::snapshot()).unwrap(), r#"{"format":"tsv","mode":"condensed"}"#);
        assert_eq!(
            serde_json::to_string(&Query::incremental(since)).unwrap(),
            r#"{"format":"tsv","mode":"condensed","since":"2024-05-02T10:00:00.123456Z"}"#
        );
        assert_eq!(format_ts(&Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap()), "2024-05-01T08:00:00Z");
    }
}

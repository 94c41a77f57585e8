//! The raw zone's layout: where the archive keeps each DAP object as it was served, and the
//! manifest that marks a job as wholly loaded. The writer (the replication functions), the
//! reader (`cargo xtask restore`) and the Glue tables over it (partitions on `day`) all
//! take their keys from here.
//!
//! ```text
//! <namespace>/<table>/kind=<snapshot|incremental>/schema=<version>/day=<YYYY-MM-DD of until>/<range>/<object file>
//! <namespace>/<table>/kind=<snapshot|incremental>/schema=<version>/day=<YYYY-MM-DD of until>/<range>/_job.json
//! ```
//!
//! Each DAP schema version has a folder of its own: Athena reads TSV columns by position,
//! so files whose columns differ (a column added in the middle) need tables of their own.
//!
//! `<range>` is the job's `until` for a snapshot and `<since>_<until>` for an incremental
//! job, both as `20261204T101500.000000Z` (no `:`, which some tools take for a drive or a
//! port, and ordered as text as in time). The manifest's name starts with `_`, which Athena
//! skips, so a query over a day reads data files only.

use crate::TableRef;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// The manifest's file name within a job's folder.
pub const MANIFEST: &str = "_job.json";

/// How a timestamp is written in a key.
const KEY_TIME: &str = "%Y%m%dT%H%M%S%.6fZ";

/// A snapshot (init) or the changes between two timestamps (sync): their files differ (an
/// incremental file has the action column), so each kind is its own Glue table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Snapshot,
    Incremental,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::Snapshot, JobKind::Incremental];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Snapshot => "snapshot",
            JobKind::Incremental => "incremental",
        }
    }
}

/// One job's folder in the archive: the table, the kind, the schema version and the DAP
/// timestamps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobFolder {
    pub table: TableRef,
    pub kind: JobKind,
    /// The DAP schema version the job's files follow.
    pub schema_version: i64,
    /// The incremental job's start (`None` for a snapshot).
    pub since: Option<DateTime<Utc>>,
    /// What the job's data is current to: the replica's `table_sync` timestamp after it.
    pub until: DateTime<Utc>,
}

/// A key that is not one of the archive's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` is not a key of the archive's layout: {why}")]
pub struct BadKey {
    pub key: String,
    pub why: &'static str,
}

impl JobFolder {
    pub fn snapshot(table: TableRef, schema_version: i64, until: DateTime<Utc>) -> Self {
        Self { table, kind: JobKind::Snapshot, schema_version, since: None, until }
    }

    pub fn incremental(table: TableRef, schema_version: i64, since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Self { table, kind: JobKind::Incremental, schema_version, since: Some(since), until }
    }

    /// The folder of the files of a table's kind and schema version: what one Glue table
    /// reads, a partition a day below it.
    pub fn version_prefix(&self) -> String {
        let t = &self.table;
        format!("{}/{}/kind={}/schema={}/", t.namespace, t.table, self.kind.as_str(), self.schema_version)
    }

    /// The folder's key prefix, ending in `/`.
    pub fn prefix(&self) -> String {
        let until = self.until.format(KEY_TIME);
        let range = match self.since {
            Some(since) => format!("{}_{until}", since.format(KEY_TIME)),
            None => until.to_string(),
        };
        format!("{}day={}/{range}/", self.version_prefix(), self.until.format("%Y-%m-%d"))
    }

    /// Where an object of the job goes: the file name of DAP's object id (which is
    /// `<job id>/<file>`), so a job loaded again writes the same keys.
    pub fn object_key(&self, object_id: &str) -> String {
        let file = object_id.rsplit('/').next().unwrap_or(object_id);
        format!("{}{file}", self.prefix())
    }

    pub fn manifest_key(&self) -> String {
        format!("{}{MANIFEST}", self.prefix())
    }

    /// The folder a manifest's key names (the reverse of [`JobFolder::manifest_key`]).
    pub fn from_manifest_key(key: &str) -> Result<Self, BadKey> {
        let bad = |why| BadKey { key: key.to_owned(), why };
        let parts: Vec<&str> = key.split('/').collect();
        let [namespace, table, kind, version, day, range, MANIFEST] = parts[..] else {
            return Err(bad("expected <namespace>/<table>/kind=<kind>/schema=<version>/day=<day>/<range>/_job.json"));
        };
        let schema_version = version
            .strip_prefix("schema=")
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| bad("the schema version is not schema=<number>"))?;
        let kind = match kind {
            "kind=snapshot" => JobKind::Snapshot,
            "kind=incremental" => JobKind::Incremental,
            _ => return Err(bad("the kind is neither kind=snapshot nor kind=incremental")),
        };
        let time = |s: &str| {
            NaiveDateTime::parse_from_str(s, KEY_TIME).map(|t| t.and_utc()).map_err(|_| bad("a timestamp is not valid"))
        };
        let (since, until) = match (kind, range.split_once('_')) {
            (JobKind::Snapshot, None) => (None, time(range)?),
            (JobKind::Incremental, Some((since, until))) => (Some(time(since)?), time(until)?),
            _ => return Err(bad("the range does not match the kind")),
        };
        let folder = Self { table: TableRef::new(namespace, table), kind, schema_version, since, until };
        if folder.manifest_key() != key || day.is_empty() {
            return Err(bad("the day does not match the range"));
        }
        Ok(folder)
    }
}

/// A job's manifest, written once every object of the job is in the archive and before the
/// replica records the job as loaded: a restore replays only jobs that have one, with the
/// schema they were loaded with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobManifest {
    /// DAP's job id, for the record.
    pub job_id: String,
    pub schema_version: i64,
    /// The DAP schema the objects follow (`GET .../schema`'s `schema`).
    pub schema: serde_json::Value,
    /// The objects' keys, in the order they were loaded.
    pub objects: Vec<String>,
    /// The fields of the objects' header line, as loaded (`meta.ts`, `key.id`, ...): the
    /// order of the Glue table's columns. `None` when no object of the job was read by the
    /// call that wrote the manifest (the schema's order stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_name_the_table_kind_day_and_range_and_read_back() {
        let since = Utc.with_ymd_and_hms(2026, 12, 3, 23, 59, 59).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 12, 4, 10, 15, 0).unwrap() + chrono::Duration::microseconds(120);
        let folder = JobFolder::incremental(TableRef::new("canvas_logs", "web_logs"), 3, since, until);
        assert_eq!(
            folder.object_key("8d5f/part-00003-1a2b.tsv.gz"),
            "canvas_logs/web_logs/kind=incremental/schema=3/day=2026-12-04/20261203T235959.000000Z_20261204T101500.000120Z/part-00003-1a2b.tsv.gz"
        );
        assert_eq!(JobFolder::from_manifest_key(&folder.manifest_key()), Ok(folder));

        let snapshot = JobFolder::snapshot(TableRef::new("canvas", "users"), 12, until);
        assert_eq!(
            snapshot.manifest_key(),
            "canvas/users/kind=snapshot/schema=12/day=2026-12-04/20261204T101500.000120Z/_job.json"
        );
        assert_eq!(JobFolder::from_manifest_key(&snapshot.manifest_key()), Ok(snapshot.clone()));
        assert_eq!(snapshot.version_prefix(), "canvas/users/kind=snapshot/schema=12/");
    }

    #[test]
    fn keys_of_other_shapes_are_refused() {
        for key in [
            "canvas/users/kind=snapshot/schema=1/day=2026-12-04/20261204T101500.000000Z/part-1.tsv.gz",
            "canvas/users/kind=full/schema=1/day=2026-12-04/20261204T101500.000000Z/_job.json",
            "canvas/users/kind=snapshot/schema=1/day=2026-12-05/20261204T101500.000000Z/_job.json",
            "canvas/users/kind=snapshot/schema=1/day=2026-12-04/20261204T101500.000000Z_20261204T101500.000000Z/_job.json",
            "canvas/users/kind=incremental/schema=1/day=2026-12-04/20261204T101500.000000Z/_job.json",
            "canvas/users/kind=snapshot/schema=1/day=2026-12-04/2026-12-04T10:15:00Z/_job.json",
            "canvas/users/kind=snapshot/day=2026-12-04/20261204T101500.000000Z/_job.json",
            "canvas/users/kind=snapshot/schema=v1/day=2026-12-04/20261204T101500.000000Z/_job.json",
        ] {
            assert!(JobFolder::from_manifest_key(key).is_err(), "{key}");
        }
    }
}

//! After each run, `summarize` brings `freshness.json` up to date with the run's tables
//! ([`merge`]) and publishes what it says as metrics ([`metrics`]): in CloudWatch's
//! embedded metric format, printed to its log, which CloudWatch turns into metrics with no
//! `PutMetricData` call and no IAM action.

use crate::error::FunctionError;
use contract::freshness::{FRESHNESS_KEY, Freshness, TableFreshness, metrics};
use contract::{Status, TableState};
use serde_json::{Value, json};

/// A table no run has had for this long (added to skip_tables, or gone from DAP) no
/// longer counts towards the oldest table's age; `status --tables` still lists it.
pub const FORGOTTEN_AFTER_S: i64 = 2 * 24 * 3600;

/// The namespace whose data DAP keeps only 30 days: its tables' ages are metrics of their own.
pub const SHORT_LIVED_NAMESPACE: &str = "canvas_logs";

/// `previous` with what this run (`execution`, ending at `now_s`) says of its tables.
pub fn merge(mut previous: Freshness, results: &[TableState], execution: &str, now_s: i64) -> Freshness {
    let run = execution.rsplit(':').next().unwrap_or(execution).to_owned();
    for state in results {
        let at = previous.tables.iter().position(|t| t.namespace == state.namespace && t.table == state.table);
        let entry = match at {
            Some(i) => &mut previous.tables[i],
            None => {
                previous.tables.push(TableFreshness {
                    namespace: state.namespace.clone(),
                    table: state.table.clone(),
                    first_seen_s: now_s,
                    ..TableFreshness::default()
                });
                previous.tables.last_mut().expect("just pushed")
            }
        };
        entry.last_run = run.clone();
        entry.last_run_s = now_s;
        let failed = state.status == Status::Failed || state.error.is_some();
        entry.last_outcome = match (&state.error, failed) {
            (Some(e), _) => e.Error.clone(),
            (None, true) => "failed".into(),
            (None, false) if state.status == Status::Success => "success".into(),
            (None, false) => state.status.as_json(),
        };
        if !failed && state.status == Status::Success {
            if let Some(t) = state.current_to_s {
                entry.current_to_s = Some(t);
            }
            if state.rows.is_some() {
                entry.rows = state.rows;
            }
        }
    }
    previous.tables.sort_by(|a, b| (&a.namespace, &a.table).cmp(&(&b.namespace, &b.table)));
    previous.written_s = now_s;
    previous
}

/// The embedded-metric-format documents of a run: its counts, the oldest table's age,
/// and the age of each table of the [`SHORT_LIVED_NAMESPACE`], all under the state machine.
pub fn metrics(fresh: &Freshness, results: &[TableState], state_machine: &str, now_s: i64) -> Vec<Value> {
    let failed = results.iter().filter(|s| s.status == Status::Failed || s.error.is_some()).count();
    let succeeded = results.len() - failed;
    let mut counts = contract::Counts::default();
    for s in results.iter().filter(|s| s.error.is_none() && s.status != Status::Failed) {
        counts += s.counts;
    }
    let kept = |t: &&TableFreshness| now_s - t.last_run_s <= FORGOTTEN_AFTER_S;
    let oldest = fresh
        .tables
        .iter()
        .filter(kept)
        .filter_map(|t| t.age_hours(now_s))
        .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
    let mut run = vec![
        (metrics::TABLES_SUCCEEDED, succeeded as f64, "Count"),
        (metrics::TABLES_FAILED, failed as f64, "Count"),
        (metrics::ROWS_INSERTED, counts.inserted as f64, "Count"),
        (metrics::ROWS_UPDATED, counts.updated as f64, "Count"),
        (metrics::ROWS_DELETED, counts.deleted as f64, "Count"),
    ];
    if let Some(oldest) = oldest {
        run.push((metrics::OLDEST_TABLE_AGE_HOURS, oldest, "None"));
    }
    let mut documents = vec![document(now_s, &[(metrics::STATE_MACHINE, state_machine)], &run)];
    for t in fresh.tables.iter().filter(kept).filter(|t| t.namespace == SHORT_LIVED_NAMESPACE) {
        if let Some(age) = t.age_hours(now_s) {
            let table = format!("{}.{}", t.namespace, t.table);
            documents.push(document(
                now_s,
                &[(metrics::STATE_MACHINE, state_machine), (metrics::TABLE, &table)],
                &[(metrics::TABLE_AGE_HOURS, age, "None")],
            ));
        }
    }
    documents
}

/// One embedded-metric-format document: the dimensions' values and the metrics' at the top
/// level, described under `_aws`.
fn document(now_s: i64, dimensions: &[(&str, &str)], values: &[(&str, f64, &str)]) -> Value {
    let mut doc = json!({
        "_aws": {
            "Timestamp": now_s * 1000,
            "CloudWatchMetrics": [{
                "Namespace": metrics::NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }
    });
    for (name, value) in dimensions {
        doc[*name] = json!(value);
    }
    for (name, value, _) in values {
        doc[*name] = json!(value);
    }
    doc
}

/// The freshness the last run wrote, or none yet (a new stack).
pub async fn load(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Freshness, FunctionError> {
    let doing = format!("reading s3://{bucket}/{FRESHNESS_KEY}");
    let Some(bytes) = crate::results::get_bytes(s3, bucket, FRESHNESS_KEY, &doing).await? else {
        return Ok(Freshness::default());
    };
    // One that cannot be read (written by an older version, say) starts afresh: the next
    // runs fill it again.
    Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the freshness file cannot be read; starting afresh");
        Freshness::default()
    }))
}

pub async fn store(s3: &aws_sdk_s3::Client, bucket: &str, fresh: &Freshness) -> Result<(), FunctionError> {
    let body = serde_json::to_vec(fresh).expect("freshness serializes");
    s3.put_object()
        .bucket(bucket)
        .key(FRESHNESS_KEY)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(|e| crate::aws::sdk_error(&format!("writing s3://{bucket}/{FRESHNESS_KEY}"), e))?;
    Ok(())
}

/// What `summarize` does for freshness after a run: the file brought up to date and the
/// metrics printed. Never the run's failure: what goes wrong is logged as an error, and
/// the file is not written over when it could not be read (its history would be lost).
pub async fn after_run(s3: &aws_sdk_s3::Client, bucket: &str, request: &contract::SummaryRequest, now_s: i64) {
    let results = &request.run.results;
    let fresh = match load(s3, bucket).await {
        Ok(previous) => {
            let fresh = merge(previous, results, &request.execution, now_s);
            // A run with no table (its listing failed, or it had none) has nothing to add,
            // and may overlap another run's summary: the file is left to that one.
            let stored = if results.is_empty() { Ok(()) } else { store(s3, bucket, &fresh).await };
            if let Err(e) = stored {
                tracing::error!(error = %e, "the tables' freshness could not be written; status --tables shows the run before");
            }
            fresh
        }
        Err(e) => {
            tracing::error!(error = %e, "the tables' freshness could not be read; it is left as it is, and the metrics are this run's tables' alone");
            merge(Freshness::default(), results, &request.execution, now_s)
        }
    };
    for document in metrics(&fresh, results, &request.state_machine, now_s) {
        // A line of its own on stdout: CloudWatch Logs reads it as metrics.
        println!("{document}");
    }
}

pub use contract::freshness::now_s;

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{CaughtError, Counts};

    const HOUR: i64 = 3600;

    fn ok(namespace: &str, table: &str, current_to_s: i64, inserted: u64) -> TableState {
        TableState {
            namespace: namespace.into(),
            table: table.into(),
            status: Status::Success,
            counts: Counts { inserted, updated: 1, deleted: 0 },
            current_to_s: Some(current_to_s),
            rows: Some(100),
            ..TableState::default()
        }
    }

    fn failed(namespace: &str, table: &str) -> TableState {
        TableState {
            namespace: namespace.into(),
            table: table.into(),
            status: Status::Failed,
            error: Some(CaughtError { Error: "TransientError".into(), Cause: "{}".into() }),
            ..TableState::default()
        }
    }

    /// A failed table keeps the timestamp of its last success and says how its run went; a
    /// table the run did not have keeps all it had.
    #[test]
    fn a_run_updates_its_tables_and_leaves_the_others() {
        let arn = |n: &str| format!("arn:aws:states:us-east-1:1:execution:cd2-dev-Replication:{n}");
        let first = merge(
            Freshness::default(),
            &[ok("canvas", "users", 1000, 5), ok("canvas", "accounts", 1000, 1), ok("canvas_logs", "web_logs", 900, 9)],
            &arn("run-1"),
            2000,
        );
        assert_eq!(first.tables.len(), 3);
        assert_eq!(first.tables[0].table, "accounts", "sorted");
        let second = merge(first, &[failed("canvas", "users"), ok("canvas", "accounts", 5000, 0)], &arn("run-2"), 6000);
        let users = second.tables.iter().find(|t| t.table == "users").unwrap();
        assert_eq!(
            (users.current_to_s, users.last_outcome.as_str(), users.last_run.as_str(), users.last_run_s),
            (Some(1000), "TransientError", "run-2", 6000)
        );
        let accounts = second.tables.iter().find(|t| t.table == "accounts").unwrap();
        assert_eq!((accounts.current_to_s, accounts.last_outcome.as_str()), (Some(5000), "success"));
        let logs = second.tables.iter().find(|t| t.table == "web_logs").unwrap();
        assert_eq!((logs.current_to_s, logs.last_run.as_str()), (Some(900), "run-1"));
        assert_eq!(second.written_s, 6000);
    }

    /// The run's counts, the oldest table's age (a table gone from the runs for a week no
    /// longer counts), and the logs tables' own ages, as embedded-metric-format documents.
    #[test]
    fn the_metrics_say_the_run_and_the_oldest_table() {
        let now = 100 * 24 * HOUR;
        let results = [ok("canvas", "users", now - 2 * HOUR, 5), failed("canvas", "courses")];
        let mut fresh = merge(Freshness::default(), &results, "x:run", now);
        let mut gone = TableFreshness {
            namespace: "canvas".into(),
            table: "skipped".into(),
            current_to_s: Some(now - 30 * 24 * HOUR),
            last_run_s: now - 8 * 24 * HOUR,
            ..TableFreshness::default()
        };
        fresh.tables.push(gone.clone());
        gone.table = "web_logs".into();
        gone.namespace = SHORT_LIVED_NAMESPACE.into();
        gone.current_to_s = Some(now - 20 * 24 * HOUR);
        gone.last_run_s = now;
        fresh.tables.push(gone);
        let docs = metrics(&fresh, &results, "arn:sm", now);
        assert_eq!(docs.len(), 2, "{docs:?}");
        let run = &docs[0];
        assert_eq!(run[metrics::STATE_MACHINE], "arn:sm");
        assert_eq!(run[metrics::TABLES_SUCCEEDED], 1.0);
        assert_eq!(run[metrics::TABLES_FAILED], 1.0);
        assert_eq!(run[metrics::ROWS_INSERTED], 5.0);
        assert_eq!(run[metrics::OLDEST_TABLE_AGE_HOURS], 480.0, "the logs table; not the one gone for 8 days");
        let described = &run["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(described["Namespace"], metrics::NAMESPACE);
        assert_eq!(described["Dimensions"], json!([[metrics::STATE_MACHINE]]));
        assert_eq!(described["Metrics"].as_array().unwrap().len(), 6);
        assert_eq!(run["_aws"]["Timestamp"], now * 1000);
        let logs = &docs[1];
        assert_eq!(logs[metrics::TABLE], "canvas_logs.web_logs");
        assert_eq!(logs[metrics::TABLE_AGE_HOURS], 480.0);
        assert_eq!(
            logs["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[metrics::STATE_MACHINE, metrics::TABLE]])
        );
    }

    /// A table that has failed since it first appeared ages from then, so the stale-table
    /// alarm covers it too; an older file's table with neither time makes up no age.
    #[test]
    fn a_table_never_replicated_ages_from_its_first_run() {
        let results = [failed("canvas", "users")];
        let first = merge(Freshness::default(), &results, "x:run-1", 10);
        let later = merge(first, &results, "x:run-2", 10 + 40 * HOUR);
        let docs = metrics(&later, &results, "arn:sm", 10 + 40 * HOUR);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0][metrics::OLDEST_TABLE_AGE_HOURS], 40.0);
        let older = Freshness {
            written_s: 10,
            tables: vec![TableFreshness {
                namespace: "canvas".into(),
                table: "users".into(),
                last_run_s: 10,
                ..TableFreshness::default()
            }],
        };
        assert!(metrics(&older, &[], "arn:sm", 20)[0].get(metrics::OLDEST_TABLE_AGE_HOURS).is_none());
    }
}

//! The run's table results, where the Distributed Map's `ResultWriter` put them: a
//! manifest in S3 naming result files, each a JSON array of child executions whose
//! `Output` is a table's last [`TableState`] (as JSON text). A child that failed as a
//! whole (no state of its own caught it) has its `Input` (the table) and the error
//! instead, and becomes a failed table. No state of the run carries the results, so their
//! number and size are bounded only by S3.

use crate::error::FunctionError;
use contract::{CaughtError, ChildResult, ResultManifest, RunResults, Status, TableState};
use serde::de::DeserializeOwned;

/// The S3 client; path-style addressing against a local endpoint (which has no bucket
/// host names), virtual-hosted on AWS.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let local = crate::settings::get(contract::env::AWS_ENDPOINT_URL_S3).or(sdk.endpoint_url().map(str::to_owned));
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(local.is_some()).build())
}

/// Reads the results the Map wrote into `run.results`, sorted by table.
pub async fn collect(s3: &aws_sdk_s3::Client, run: &mut RunResults) -> Result<(), FunctionError> {
    let Some(written) = run.written.take() else { return Ok(()) };
    let manifest: ResultManifest = get_json(s3, &written.Bucket, &written.Key).await?;
    let files = &manifest.result_files;
    for file in files.succeeded.iter().chain(&files.failed).chain(&files.pending) {
        let children: Vec<ChildResult> = get_json(s3, &written.Bucket, &file.key).await?;
        for child in children {
            run.results.push(table_state(child, &file.key)?);
        }
    }
    run.results.sort_by_key(TableState::table_ref);
    tracing::info!(tables = run.results.len(), files = files.succeeded.len() + files.failed.len(), "results read");
    Ok(())
}

/// A child execution's table state: its output, or its input marked failed with its error.
fn table_state(child: ChildResult, file: &str) -> Result<TableState, FunctionError> {
    let unreadable = |what: &str, e: serde_json::Error| {
        FunctionError::config(format!(
            "the run result file {file} has a child execution whose {what} is not a table state: {e}"
        ))
    };
    if let Some(output) = &child.output {
        return serde_json::from_str(output).map_err(|e| unreadable("output", e));
    }
    let input = child.input.as_deref().unwrap_or("{}");
    let mut state: TableState = serde_json::from_str(input).map_err(|e| unreadable("input", e))?;
    state.status = Status::Failed;
    state.error = Some(CaughtError {
        Error: child.error.unwrap_or_else(|| format!("States.{}", child.status)),
        Cause: child.cause.unwrap_or_else(|| format!("the child execution ended {} without an output", child.status)),
    });
    Ok(state)
}

async fn get_json<T: DeserializeOwned>(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<T, FunctionError> {
    let doing = format!("reading the run results s3://{bucket}/{key}");
    let bytes = get_bytes(s3, bucket, key, &doing)
        .await?
        .ok_or_else(|| FunctionError::config(format!("{doing} failed: there is no such object")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| FunctionError::config(format!("{doing}: not the JSON Step Functions writes: {e}")))
}

/// An object's bytes, or `None` when the bucket has no such key; `doing` says what for.
pub(crate) async fn get_bytes(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    doing: &str,
) -> Result<Option<Vec<u8>>, FunctionError> {
    let object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(crate::aws::sdk_error(doing, e)),
    };
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| FunctionError::transient(format!("{doing} failed: {}", dap::chain(&e))))?;
    Ok(Some(bytes.into_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_child_that_failed_as_a_whole_is_a_failed_table() {
        let child = ChildResult {
            status: "FAILED".into(),
            input: Some(json!({"namespace": "canvas", "table": "users"}).to_string()),
            error: Some("States.Runtime".into()),
            cause: Some("bad path".into()),
            ..ChildResult::default()
        };
        let state = table_state(child, "runs/x/FAILED_0.json").unwrap();
        assert_eq!((state.table.as_str(), state.status), ("users", Status::Failed));
        assert_eq!(state.error.unwrap().Error, "States.Runtime");
        let done = json!({"namespace": "canvas", "table": "accounts", "status": "success", "calls": 2});
        let child =
            ChildResult { status: "SUCCEEDED".into(), output: Some(done.to_string()), ..ChildResult::default() };
        let state = table_state(child, "f").unwrap();
        assert_eq!((state.status, state.calls), (Status::Success, 2));
    }
}

//! `summarize` reads the tables' results where the Distributed Map's ResultWriter put them
//! (moto's S3): the manifest, then the succeeded and failed children's files.

mod support;

use contract::{ResultWriterDetails, RunResults, Status};
use serde_json::json;
use support::Aws;

#[tokio::test]
async fn the_results_of_every_child_are_read_from_the_manifest_and_its_files() {
    let aws = Aws::start().await;
    let s3 = functions::results::s3_client(&aws.sdk);
    let bucket = "cd2-results-test";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let put = async |key: &str, body: serde_json::Value| {
        s3.put_object().bucket(bucket).key(key).body(body.to_string().into_bytes().into()).send().await.unwrap();
    };
    let done = |table: &str, inserted: u64| {
        json!({"namespace": "canvas", "table": table, "status": "success", "calls": 1,
               "counts": {"inserted": inserted, "updated": 0, "deleted": 0}})
    };
    put(
        "runs/r1/SUCCEEDED_0.json",
        json!([
            {"Status": "SUCCEEDED", "Input": "{}", "Output": done("users", 3).to_string(), "Name": "1"},
            {"Status": "SUCCEEDED", "Input": "{}", "Output": done("accounts", 2).to_string(), "Name": "0"},
        ]),
    )
    .await;
    put(
        "runs/r1/FAILED_0.json",
        json!([{"Status": "FAILED", "Input": json!({"namespace": "canvas", "table": "courses"}).to_string(),
                "Error": "States.Runtime", "Cause": "an invalid path"}]),
    )
    .await;
    put(
        "runs/r1/manifest.json",
        json!({"DestinationBucket": bucket, "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:m/r1",
               "ResultFiles": {"FAILED": [{"Key": "runs/r1/FAILED_0.json", "Size": 1}], "PENDING": [],
                               "SUCCEEDED": [{"Key": "runs/r1/SUCCEEDED_0.json", "Size": 1}]}}),
    )
    .await;

    let mut run = RunResults {
        written: Some(ResultWriterDetails { Bucket: bucket.into(), Key: "runs/r1/manifest.json".into() }),
        ..RunResults::default()
    };
    functions::results::collect(&s3, &mut run).await.unwrap();
    let tables: Vec<(&str, Status)> = run.results.iter().map(|s| (s.table.as_str(), s.status)).collect();
    assert_eq!(tables, [("accounts", Status::Success), ("courses", Status::Failed), ("users", Status::Success)]);
    assert_eq!(run.results[2].counts.inserted, 3);
    assert_eq!(run.results[1].error.as_ref().unwrap().Error, "States.Runtime");
    assert_eq!(run.written, None);

    // A manifest that is not there is an error that says where it looked.
    let mut missing = RunResults {
        written: Some(ResultWriterDetails { Bucket: bucket.into(), Key: "runs/none/manifest.json".into() }),
        ..RunResults::default()
    };
    let err = functions::results::collect(&s3, &mut missing).await.unwrap_err().to_string();
    assert!(err.contains("s3://cd2-results-test/runs/none/manifest.json"), "{err}");
}

/// After each run `summarize` brings the tables' freshness up to date in the bucket (moto's
/// S3): a table a later run failed keeps its last success's timestamp, a table the later
/// run did not have keeps everything; a file that does not parse (an older version's)
/// starts afresh.
#[tokio::test]
async fn the_freshness_file_follows_the_runs() {
    let aws = Aws::start().await;
    let s3 = functions::results::s3_client(&aws.sdk);
    let bucket = "cd2-freshness-test";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let state = |table: &str, status: &str, current_to_s: Option<i64>| {
        serde_json::from_value::<contract::TableState>(json!({
            "namespace": "canvas", "table": table, "status": status, "current_to_s": current_to_s, "rows": 7,
            "error": (status == "failed").then(|| json!({"Error": "DatabaseError", "Cause": "{}"})),
        }))
        .unwrap()
    };
    let request = |execution: &str, results| contract::SummaryRequest {
        execution: format!("arn:aws:states:us-east-1:123456789012:execution:cd2-dev-Replication:{execution}"),
        state_machine: "arn:aws:states:us-east-1:123456789012:stateMachine:cd2-dev-Replication".into(),
        run: RunResults { results, ..RunResults::default() },
    };
    assert_eq!(functions::freshness::load(&s3, bucket).await.unwrap(), Default::default(), "none yet");
    let first = request("run-1", vec![state("users", "success", Some(100)), state("accounts", "success", Some(100))]);
    functions::freshness::after_run(&s3, bucket, &first, 1_000).await;
    let second = request("run-2", vec![state("users", "failed", None)]);
    functions::freshness::after_run(&s3, bucket, &second, 2_000).await;

    let fresh = functions::freshness::load(&s3, bucket).await.unwrap();
    assert_eq!(fresh.written_s, 2_000);
    let users = &fresh.tables[1];
    assert_eq!(
        (users.table.as_str(), users.current_to_s, users.last_outcome.as_str(), users.last_run.as_str()),
        ("users", Some(100), "DatabaseError", "run-2")
    );
    let accounts = &fresh.tables[0];
    assert_eq!((accounts.last_run.as_str(), accounts.rows), ("run-1", Some(7)));

    s3.put_object()
        .bucket(bucket)
        .key(contract::freshness::FRESHNESS_KEY)
        .body(b"not json".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(functions::freshness::load(&s3, bucket).await.unwrap(), Default::default());
}

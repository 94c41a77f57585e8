//! `db_bootstrap` as CloudFormation drives it: Create on a fresh database, an Update that
//! changes nothing, Delete that keeps the data, and an answer PUT every time (failures
//! included), against a real PostgreSQL and moto's Secrets Manager.

mod support;

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use contract::Status;
use functions::bootstrap::{Bootstrap, Properties, Request};
use functions::database::{Credentials, DbAuth, DbSettings};
use functions::replicate::{Kind, Replication};
use functions::settings::CallLimits;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Aws, database, demo_emulator};

/// Stands in for the pre-signed S3 URL CloudFormation waits on: keeps what is PUT.
async fn response_catcher() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/cfn-response",
        axum::routing::put(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cfn-response?X-Amz-Signature=secret-signature", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn request(kind: &str, url: &str, props: &Properties) -> Request {
    let mut r = json!({
        "RequestType": kind,
        "RequestId": format!("req-{kind}"),
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/cd2-test/1",
        "ResourceType": "Custom::DatabaseBootstrap",
        "LogicalResourceId": "DatabaseBootstrap",
        "ResourceProperties": props,
    });
    if kind != "Create" {
        r["PhysicalResourceId"] = json!("from-create");
        r["OldResourceProperties"] = json!(props);
    }
    let parsed: Request = serde_json::from_value(r).unwrap();
    assert!(matches!(
        (kind, &parsed),
        ("Create", CloudFormationCustomResourceRequest::Create(_))
            | ("Update", CloudFormationCustomResourceRequest::Update(_))
            | ("Delete", CloudFormationCustomResourceRequest::Delete(_))
    ));
    parsed
}

async fn sql_as(db_url: &str, user: &str, sql: &str) -> Result<(), String> {
    let mut c = replica::connect::connect(&support::target(db_url, user)).await.map_err(|e| e.to_string())?;
    replica::batch(sql).execute(&mut c).await.map(drop).map_err(|e| replica::error::describe(&e))
}

#[tokio::test]
async fn create_update_delete_leave_a_least_privilege_role_that_replicates() {
    let aws = Aws::start().await;
    let (db_url, db) = database().await;
    let admin = support::admin_user(&db_url);
    // Aurora's role for IAM database authentication.
    sqlx::raw_sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN CREATE ROLE rds_iam NOLOGIN; END IF; END $$")
        .execute(&db)
        .await
        .ok();
    let secret = aws
        .put_secret(
            &format!("cd2-test/admin-{}", support::uuid_like()),
            json!({"username": admin, "password": "rds-managed"}),
        )
        .await;
    let app = format!("cd2_app_{}", support::uuid_like());
    let bootstrap = Bootstrap {
        target: support::target(&db_url, "unused"),
        admin_secret: secret,
        secrets: aws.secrets(),
        http: reqwest::Client::new(),
    };
    let props = Properties { app_user: app.clone(), namespaces: vec!["canvas".into()], iam_auth: "true".into() };
    let (url, answers) = response_catcher().await;

    bootstrap.handle(request("Create", &url, &props), support::in_a_minute()).await.unwrap();
    let created = answers.lock().unwrap().pop().expect("an answer was PUT");
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["RequestId"], "req-Create");
    assert_eq!(created["LogicalResourceId"], "DatabaseBootstrap");
    let physical = created["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert!(physical.ends_with(&app), "{physical}");

    let role: (bool, bool, bool, bool) =
        sqlx::query_as("SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1")
            .bind(&app)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(role, (true, false, false, false), "login only");
    let iam: bool =
        sqlx::query_scalar("SELECT pg_has_role($1, 'rds_iam', 'MEMBER')").bind(&app).fetch_one(&db).await.unwrap();
    assert!(iam, "logs in through IAM database authentication");
    let owned = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT nspname FROM pg_namespace WHERE pg_get_userbyid(nspowner) = $1 ORDER BY nspname",
        )
        .bind(&app)
        .fetch_all(&db)
        .await
        .unwrap()
    };
    assert_eq!(owned().await, ["canvas", "cd2_aws", "cd2_aws_staging_canvas", "instructure_dap"]);
    let tables = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT schemaname || '.' || tablename || ':' || tableowner FROM pg_tables WHERE schemaname IN ('instructure_dap', 'cd2_aws') ORDER BY 1",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    let metadata = tables().await;
    assert!(metadata.len() >= 4 && metadata.iter().all(|t| t.ends_with(&format!(":{app}"))), "{metadata:?}");

    // An Update that changes nothing changes nothing.
    bootstrap.handle(request("Update", &url, &props), support::in_a_minute()).await.unwrap();
    let updated = answers.lock().unwrap().pop().unwrap();
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["PhysicalResourceId"], "from-create");
    assert_eq!(owned().await, ["canvas", "cd2_aws", "cd2_aws_staging_canvas", "instructure_dap"]);
    assert_eq!(tables().await, metadata);

    // The role replicates (as the Lambdas do) ...
    let emulator = demo_emulator(emulator::Settings::default()).await;
    let dap = functions::DapAccess::new(aws.dap_settings(&emulator).await, aws.secrets()).await.unwrap();
    let password = aws.put_secret(&format!("cd2-test/app-{}", support::uuid_like()), json!({"password": "x"})).await;
    let settings = DbSettings { target: support::target(&db_url, &app), auth: DbAuth::Secret(password) };
    let limits = CallLimits {
        budget: Duration::from_secs(30),
        margin: Duration::from_secs(2),
        max_calls: 10,
        max_idle_calls: 3,
    };
    let mut r = Replication::new(dap, Credentials::new(settings, &aws.sdk), limits);
    let mut state: contract::TableState =
        serde_json::from_value(json!({"namespace": "canvas", "table": "accounts"})).unwrap();
    state = r.handle(Kind::Sync, state, support::in_a_minute()).await.unwrap();
    assert_eq!(state.status, Status::InitNeeded);
    while state.status != Status::Success {
        state = r.handle(Kind::Init, state, support::in_a_minute()).await.unwrap();
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM canvas.accounts").fetch_one(&db).await.unwrap();
    assert_eq!(rows, 3);

    // ... and can do nothing more.
    let e = sql_as(&db_url, &app, "CREATE ROLE intruder").await.unwrap_err();
    assert!(e.contains("42501"), "{e}");
    let e = sql_as(&db_url, &app, "CREATE SCHEMA elsewhere").await.unwrap_err();
    assert!(e.contains("42501"), "{e}");
    sqlx::raw_sql("CREATE SCHEMA private; CREATE TABLE private.grades (id int); INSERT INTO private.grades VALUES (1)")
        .execute(&db)
        .await
        .unwrap();
    let e = sql_as(&db_url, &app, "SELECT * FROM private.grades").await.unwrap_err();
    assert!(e.contains("42501"), "{e}");

    // Delete keeps the role, the schemas and the data.
    bootstrap.handle(request("Delete", &url, &props), support::in_a_minute()).await.unwrap();
    let deleted = answers.lock().unwrap().pop().unwrap();
    assert_eq!(deleted["Status"], "SUCCESS");
    assert_eq!(deleted["PhysicalResourceId"], "from-create");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM canvas.accounts").fetch_one(&db).await.unwrap();
    assert_eq!(rows, 3);
}

#[tokio::test]
async fn a_failure_is_answered_too_without_the_response_url() {
    let aws = Aws::start().await;
    let (db_url, _) = database().await;
    let bootstrap = Bootstrap {
        target: support::target(&db_url, "unused"),
        admin_secret: "cd2-test/no-such-admin-secret".into(),
        secrets: aws.secrets(),
        http: reqwest::Client::new(),
    };
    let props = Properties { app_user: "cd2_app".into(), namespaces: vec!["canvas".into()], iam_auth: "true".into() };
    let (url, answers) = response_catcher().await;
    bootstrap.handle(request("Create", &url, &props), support::in_a_minute()).await.unwrap();
    let answer = answers.lock().unwrap().pop().expect("a failure is answered too");
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.contains("cd2-test/no-such-admin-secret"), "{reason}");
    assert!(!answer.to_string().contains("secret-signature"), "the pre-signed URL never shows");

    // No one to answer: the handler says so (CloudFormation would wait), naming no URL.
    let gone = request("Create", "http://127.0.0.1:9/cfn-response?X-Amz-Signature=secret-signature", &props);
    let e = bootstrap.handle(gone, support::in_a_minute()).await.unwrap_err();
    assert!(e.to_string().contains("answering CloudFormation failed"), "{e}");
    assert!(!e.to_string().contains("secret-signature"), "{e}");
}

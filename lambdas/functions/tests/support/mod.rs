//! moto (AWS APIs), the DAP emulator and a fresh database, and the SDK pointed at moto.

#![allow(dead_code)]

pub mod archive;
pub mod stage;

use aws_config::{Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;
use emulator::{Emulator, Endpoint, FaultKind, Settings};
use functions::settings::DapSettings;
use sqlx::PgPool;
use std::time::Duration;

pub struct Aws {
    pub moto: testkit::Moto,
    pub sdk: SdkConfig,
}

impl Aws {
    pub async fn start() -> Self {
        let moto = tokio::task::spawn_blocking(|| testkit::Moto::start(None)).await.unwrap().expect("moto starts");
        Self::start_with(moto).await
    }

    /// The SDK pointed at a moto already started.
    pub async fn start_with(moto: testkit::Moto) -> Self {
        let sdk = functions::aws::loader()
            .endpoint_url(moto.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await;
        Self { moto, sdk }
    }

    /// Makes moto's Step Functions really run executions, their Lambda tasks included
    /// (set before any function or state machine exists).
    pub async fn execute_state_machines(&self) {
        let config =
            serde_json::json!({"stepfunctions": {"execute_state_machine": true}, "lambda": {"use_docker": false}});
        let answer = reqwest::Client::new()
            .post(format!("{}/moto-api/config", self.moto.endpoint()))
            .body(config.to_string())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "moto config: {}", answer.status());
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    pub async fn put_secret(&self, name: &str, value: serde_json::Value) -> String {
        let out = self.secrets().create_secret().name(name).secret_string(value.to_string()).send().await.unwrap();
        out.arn.unwrap()
    }

    /// The DAP key of `emulator` in a secret, as set_key.sh stores it.
    pub async fn dap_settings(&self, emulator: &Emulator) -> DapSettings {
        let s = emulator.settings();
        let name = format!("cd2-test/dap-{}", uuid_like());
        self.put_secret(&name, serde_json::json!({"client_id": s.client_id, "client_secret": s.client_secret})).await;
        DapSettings {
            api_url: emulator.base_url(),
            secret_id: name,
            poll_interval: Some(Duration::from_millis(5)),
            rate_window: None,
        }
    }
}

/// An invocation's deadline a minute from now.
pub fn in_a_minute() -> std::time::SystemTime {
    std::time::SystemTime::now() + Duration::from_secs(60)
}

pub fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

pub async fn demo_emulator(settings: Settings) -> Emulator {
    let emulator = Emulator::start(settings).await.expect("emulator starts");
    emulator.load_fixture(std::path::Path::new(emulator::DEMO_FIXTURE)).unwrap();
    emulator
}

/// The demo's DAP (and the end-to-end test's): four rows an object and a pause before each
/// download, so that courses' 25 rows take several budgeted calls.
pub fn demo_dap() -> Settings {
    Settings { rows_per_object: 4, download_delay: Duration::from_millis(600), ..Settings::default() }
}

/// canvas.accounts and canvas.courses from the demo data, and two more tables like
/// accounts: users (which DAP refuses for good) and enrollments (which fails once).
pub fn add_demo_tables(emulator: &Emulator) {
    emulator.load_fixture(std::path::Path::new(emulator::DEMO_FIXTURE)).unwrap();
    let demo: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(emulator::DEMO_FIXTURE).unwrap()).unwrap();
    let accounts = &demo["tables"][0];
    assert_eq!(accounts["table"], "accounts");
    for table in ["users", "enrollments"] {
        emulator.put_schema("canvas", table, accounts["schema"].clone());
        emulator.commit("canvas", table, accounts["rows"].as_array().unwrap().clone(), vec![]);
    }
    // A permanent DAP error for users, at every call.
    emulator.inject_on_table(Endpoint::Schema, "users", FaultKind::Status(400, "ValidationError".into()), 100);
    // Enrollments: as many 503s as the client tries in one call, so the call fails as
    // transient and the state machine's Retry calls again.
    emulator.inject_on_table(Endpoint::Schema, "enrollments", FaultKind::Status(503, "ServiceUnavailable".into()), 5);
}

/// A fresh database: its URL and a pool for the test's own queries.
pub async fn database() -> (String, PgPool) {
    let url = testkit::fresh_database().await;
    let pool = PgPool::connect(&format!("{url}?sslmode=disable")).await.expect("connect");
    (url, pool)
}

/// Connection options for the test server as `user`, checked as the Lambdas check Aurora:
/// `verify-full` against the server's CA.
pub fn target(db_url: &str, user: &str) -> replica::ConnectOptions {
    let mut options = replica::parse_connection_string(db_url).unwrap();
    options.user = user.to_owned();
    let ca = testkit::server_ca().expect("the test server has TLS");
    options.tls(replica::TlsMode::VerifyFull).root_cert_path(ca)
}

/// The server's superuser, as the admin secret RDS manages would name it.
pub fn admin_user(db_url: &str) -> String {
    replica::parse_connection_string(db_url).unwrap().user
}

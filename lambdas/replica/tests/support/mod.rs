//! A DAP emulator, a DAP client pointed at it and a fresh database on a real PostgreSQL.

#![allow(dead_code)]

use dap::{ClientConfig, Credentials, DapClient, Limit};
use emulator::{Emulator, Settings};
use replica::{Budget, Outcome, ReplicaError, Replicator, TableRef};
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::PgPool;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use std::time::Duration;

pub struct Fixture {
    pub emulator: Emulator,
    pub dap: DapClient,
    /// The database as its administrator (the tests' own setup, as a DBA or analyst would).
    pub db_url: String,
    /// The database as the replicating role the bootstrap makes ([`Fixture::app`]): what
    /// every replicator of the tests connects as, never a superuser.
    pub app_url: String,
    pub app: String,
    /// The test's own connections, as the administrator, beside the replicator's.
    pub db: PgPool,
    readers: std::sync::Mutex<Vec<String>>,
    passwords: std::sync::Mutex<std::collections::BTreeMap<String, replica::scram::Password>>,
}

pub fn client_config(emulator: &Emulator) -> ClientConfig {
    let s = emulator.settings();
    let mut config =
        ClientConfig::new(&emulator.base_url(), Credentials { client_id: s.client_id, client_secret: s.client_secret });
    config.poll_interval = Duration::from_millis(5);
    config.retry.first = Duration::from_millis(5);
    config.job_limit = Limit::per_minute(10_000);
    config.list_limit = Limit::per_minute(10_000);
    config
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_settings(Settings { rows_per_object: 2, ..Settings::default() }).await
    }

    pub async fn with_settings(settings: Settings) -> Self {
        let emulator = Emulator::start(settings).await.expect("emulator starts");
        let dap = DapClient::new(client_config(&emulator)).expect("client");
        let db_url = testkit::fresh_database().await;
        let db = PgPool::connect(&format!("{db_url}?sslmode=disable")).await.expect("connect");
        // Roles are the server's, databases the test's: the role is named after the database.
        let (server, database) = db_url.rsplit_once('/').expect("a database in the URL");
        let app = format!("app_{database}");
        let (_, host) = server.rsplit_once('@').expect("a user in the URL");
        let app_url = format!("postgresql://{app}@{host}/{database}");
        let f = Self {
            emulator,
            dap,
            db_url,
            app_url,
            app,
            db,
            readers: Default::default(),
            passwords: Default::default(),
        };
        f.set_up().await;
        f
    }

    /// The bootstrap's setup, as the administrator: the replicating role, its schemas, the
    /// readers named so far and the views keeper.
    async fn set_up(&self) {
        let setup = replica::setup::Setup {
            app: self.app.clone(),
            namespaces: contract::Namespace::ALL.iter().map(|n| n.to_string()).collect(),
            readers: self.readers.lock().unwrap().clone(),
            passwords: self.passwords.lock().unwrap().clone(),
            iam: false,
        };
        let mut admin = self.db.acquire().await.expect("an admin connection");
        setup.apply(&mut admin).await.unwrap_or_else(|e| panic!("setting up the database: {e}"));
    }

    /// A reader the configuration names (its role is named after the database too), set
    /// up as the bootstrap would.
    pub async fn reader(&self, name: &str) -> String {
        let role = self.reader_role(name);
        self.readers.lock().unwrap().push(role.clone());
        self.set_up().await;
        role
    }

    /// A reader the configuration names with a password (a BI tool's), set up as the
    /// bootstrap would; the server asks it for that password ([`testkit::PASSWORD_LOGIN_GROUP`]).
    pub async fn password_reader(&self, name: &str, password: &str) -> String {
        let role = self.reader_role(name);
        self.readers.lock().unwrap().push(role.clone());
        self.passwords.lock().unwrap().insert(role.clone(), replica::scram::Password::new(password));
        self.set_up().await;
        let group = testkit::PASSWORD_LOGIN_GROUP;
        // Made by whichever test comes first; the others' attempts fail harmlessly.
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {group} NOLOGIN"))).execute(&self.db).await;
        self.exec(&format!("GRANT {group} TO {role}")).await;
        role
    }

    /// Readers' roles are named after the database too: the server's roles are shared.
    fn reader_role(&self, name: &str) -> String {
        format!("{name}_{}", self.app.trim_start_matches("app_t_").get(..12).unwrap_or("x"))
    }

    /// A reader no longer named: the setup runs without it.
    pub async fn forget_reader(&self, role: &str) {
        self.readers.lock().unwrap().retain(|r| r != role);
        self.passwords.lock().unwrap().remove(role);
        self.set_up().await;
    }

    /// Runs SQL statements as `role` (a reader making views, say), in one transaction.
    pub async fn exec_as(&self, role: &str, sql: &str) {
        let sql = format!("BEGIN; SET LOCAL ROLE {}; {sql}; COMMIT;", replica::model::quote_ident(role));
        self.exec(&sql).await;
    }

    /// SQL statements as `role`, or the error they end with.
    pub async fn try_as(&self, role: &str, sql: &str) -> Result<(), String> {
        let mut c = sqlx::PgConnection::connect(&format!("{}?sslmode=disable", self.url_as(role)))
            .await
            .map_err(|e| replica::error::describe(&e))?;
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
        let _ = sqlx::Connection::close(c).await;
        result.map(drop).map_err(|e| replica::error::describe(&e))
    }

    /// The database as `role` (loopback logins are trusted on the test server).
    pub fn url_as(&self, role: &str) -> String {
        self.app_url.replacen(&format!("://{}@", self.app), &format!("://{role}@"), 1)
    }

    /// The database as `role`, with a password (`password` needs no escaping in a URL).
    pub fn url_with_password(&self, role: &str, password: &str) -> String {
        self.app_url.replacen(&format!("://{}@", self.app), &format!("://{role}:{password}@"), 1)
    }

    pub async fn replicator(&self) -> Replicator {
        let config = replica::parse_connection_string(&self.app_url).unwrap();
        Replicator::connect(&config, self.dap.clone()).await.expect("replicator connects")
    }

    pub async fn replicate(&self, table: &str) -> Result<Outcome, ReplicaError> {
        self.replicator().await.replicate(&TableRef::new("canvas", table), Budget::unlimited()).await
    }

    pub async fn rows(&self, sql: &str) -> Vec<PgRow> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", replica::error::describe(&e)))
    }

    /// One column of a query, as text.
    pub async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        self.rows(sql).await.iter().map(|r| r.get(0)).collect()
    }

    /// Runs SQL statements (the test's own setup).
    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", replica::error::describe(&e)));
    }

    pub fn accounts(&self, rows: Vec<Value>) {
        self.emulator.put_schema("canvas", "accounts", accounts_schema(1));
        self.emulator.commit("canvas", "accounts", rows, vec![]);
    }
}

/// A table with every column type of `dap-protocol.md` 8.2; `version` 2 adds a column, an
/// enum label, widens `small` to int32 and drops `uuid`.
pub fn accounts_schema(version: u32) -> Value {
    let mut value = json!({
        "name": {"type": "string", "maxLength": 255, "description": "The account's name"},
        "uuid": {"type": "string"},
        "workflow_state": {"type": "string", "enum": ["active", "deleted", "suspended"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "settings": {"type": "object", "properties": {"note": {"type": "string"}}, "additionalProperties": false},
        "sis_ids": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "number"},
        "ratio": {"type": "number", "format": "float32"},
        "amount": {"type": "number", "exclusiveMinimum": -1000, "exclusiveMaximum": 1000, "multipleOf": 0.01},
        "birth_date": {"type": "string", "format": "date"},
        "small": {"type": "integer", "format": "int16"},
        "quota": {"type": "integer", "format": "int32"},
        "is_root": {"type": "boolean"},
        "code": {"type": "string", "const": "XY"},
        "context_type": {"type": "string", "enum": ["Account"]},
        "ip": {"type": "string", "format": "ipv4"},
        "ref_uuid": {"type": "string", "format": "uuid"},
        "ids": {"type": "array", "items": {"type": "integer", "format": "int64"}},
        "extra": {"type": "object"}
    });
    if version >= 2 {
        let v = value.as_object_mut().unwrap();
        v.shift_remove("uuid");
        v.insert("new_col".into(), json!({"type": "string", "description": "Added in v2"}));
        v.insert("small".into(), json!({"type": "integer", "format": "int32"}));
        v.insert(
            "workflow_state".into(),
            json!({"type": "string", "enum": ["active", "deleted", "suspended", "pending"]}),
        );
    }
    emulator::table_schema(value, &["name", "workflow_state"])
}

pub fn account(id: i64, name: &str) -> Value {
    json!({"id": id, "name": name, "workflow_state": "active"})
}

pub fn budget_zero() -> Budget {
    Budget::of(Duration::ZERO)
}

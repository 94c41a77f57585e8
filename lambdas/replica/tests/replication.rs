//! Init and sync against the DAP emulator over HTTP and a real PostgreSQL.

mod support;

use replica::{Budget, Counts, Status, TableRef};
use serde_json::json;
use sqlx::Row as _;
use support::{Fixture, account, accounts_schema};

#[tokio::test]
async fn init_then_sync_applies_inserts_updates_and_deletes() {
    let f = Fixture::new().await;
    f.accounts((1..=5).map(|i| account(i, &format!("account {i}"))).collect());

    let first = f.replicate("accounts").await.unwrap();
    assert_eq!(first.status, Status::Success);
    assert_eq!(first.counts, Counts { inserted: 5, updated: 0, deleted: 0 });
    assert_eq!(f.texts("SELECT name FROM canvas.accounts ORDER BY id").await.len(), 5);
    let meta = f
        .rows(r#"SELECT source_namespace, source_table, "timestamp"::text, schema_version, target_schema, target_table, schema_description_format, schema_description FROM instructure_dap.table_sync"#)
        .await;
    assert_eq!(meta.len(), 1);
    let m = &meta[0];
    assert_eq!((m.get::<String, _>(0), m.get::<String, _>(1)), ("canvas".into(), "accounts".into()));
    assert_eq!(m.get::<String, _>(2), "2024-05-01 10:00:01", "the job's `at`, naive UTC");
    assert_eq!(m.get::<i64, _>(3), 1);
    assert_eq!(
        (m.get::<String, _>(4), m.get::<String, _>(5), m.get::<String, _>(6)),
        ("canvas".into(), "accounts".into(), "json".into())
    );
    let description: serde_json::Value = serde_json::from_str(&m.get::<String, _>(7)).unwrap();
    assert!(description["properties"].get("meta").is_none() && description["properties"].get("key").is_some());
    assert_eq!(f.texts("SELECT version::text FROM instructure_dap.database_version").await, [Some("1".into())]);

    // Nothing changed: an empty sync still succeeds and moves the timestamp.
    let idle = f.replicate("accounts").await.unwrap();
    assert_eq!((idle.status, idle.counts), (Status::Success, Counts::default()));

    f.emulator.commit(
        "canvas",
        "accounts",
        vec![account(2, "renamed two"), account(7, "seven"), account(8, "eight")],
        vec![json!({"id": 3}), json!({"id": 99})],
    );
    let sync = f.replicate("accounts").await.unwrap();
    assert_eq!(sync.status, Status::Success);
    assert_eq!(sync.counts, Counts { inserted: 2, updated: 1, deleted: 1 });
    let names = f.texts("SELECT id || ':' || name FROM canvas.accounts ORDER BY id").await;
    let names: Vec<String> = names.into_iter().flatten().collect();
    assert_eq!(names, ["1:account 1", "2:renamed two", "4:account 4", "5:account 5", "7:seven", "8:eight"]);
    assert_eq!(
        f.texts(r#"SELECT "timestamp"::text FROM instructure_dap.table_sync"#).await,
        [Some("2024-05-01 10:00:02".into())],
        "advanced to the job's `until`"
    );
    assert!(f.rows(r#"SELECT 1 FROM cd2_aws.job"#).await.is_empty(), "no job left behind");
    // How fresh it is: the job's `until` (2024-05-01T10:00:02Z), and about its rows.
    let mut r = f.replicator().await;
    let fresh = r.freshness(&TableRef::new("canvas", "accounts")).await.unwrap();
    assert_eq!(fresh.current_to_s, Some(1_714_557_602));
    assert!(fresh.rows.is_some_and(|n| n <= 7), "{fresh:?}");
    assert_eq!(
        r.freshness(&TableRef::new("canvas", "courses")).await.unwrap(),
        replica::Freshness::default(),
        "not replicated"
    );
    // The incremental query asked for changes since the stored timestamp.
    let requests = f.emulator.requests();
    assert!(requests.iter().any(|r| r.contains(r#""since":"2024-05-01T10:00:01Z""#)), "{requests:#?}");
}

#[tokio::test]
async fn every_column_type_survives_hard_values() {
    let f = Fixture::new().await;
    let hard = json!({
        "id": 9_007_199_254_740_993_i64,
        "name": "tab\there, newline\nthere, backslash \\ and \\N, unicode: ünï©ødé 🎓, quote ' \"",
        "uuid": "",
        "workflow_state": "suspended",
        "created_at": "2020-01-01T00:00:00.123456Z",
        "updated_at": "2024-04-30T12:34:56Z",
        "settings": {"note": "multi\nline \"quoted\" \\ back", "nested": [1, {"a": null}]},
        "sis_ids": ["a", "b,c", "d\"e", "f\\g", "{h}", "NULL", ""],
        "score": 1.5e-300,
        "ratio": 0.25,
        "amount": -999.99,
        "birth_date": "1999-12-31",
        "small": -32768,
        "quota": 2_147_483_647,
        "is_root": false,
        "code": "XY",
        "context_type": "Account",
        "ip": "192.0.2.1",
        "ref_uuid": "123e4567-e89b-12d3-a456-426614174000",
        "ids": [1, -2, 9_223_372_036_854_775_807_i64],
        "extra": {"free": "form"}
    });
    let nulls = json!({"id": 2, "name": "", "workflow_state": "active"});
    f.accounts(vec![hard.clone(), nulls]);
    f.replicate("accounts").await.unwrap();

    let row = &f
        .rows(
            "SELECT id, name, uuid, workflow_state::text, created_at::text, settings, sis_ids, score, ratio, amount::text,
                    birth_date::text, small, quota, is_root, code, context_type::text, host(ip), ref_uuid::text, ids, extra
             FROM canvas.accounts WHERE id = 9007199254740993",
        )
        .await[0];
    assert_eq!(row.get::<i64, _>(0), 9_007_199_254_740_993);
    assert_eq!(row.get::<String, _>(1), hard["name"].as_str().unwrap());
    assert_eq!(row.get::<String, _>(2), "", "an empty string is not NULL");
    assert_eq!(row.get::<String, _>(3), "suspended");
    assert_eq!(row.get::<String, _>(4), "2020-01-01 00:00:00.123456");
    assert_eq!(row.get::<serde_json::Value, _>(5), hard["settings"]);
    let sis: Vec<String> = row.get(6);
    assert_eq!(sis, ["a", "b,c", "d\"e", "f\\g", "{h}", "NULL", ""]);
    assert_eq!(row.get::<f64, _>(7), 1.5e-300);
    assert_eq!(row.get::<f32, _>(8), 0.25);
    assert_eq!(row.get::<String, _>(9), "-999.99");
    assert_eq!(row.get::<String, _>(10), "1999-12-31");
    assert_eq!(row.get::<i16, _>(11), -32768);
    assert_eq!(row.get::<i32, _>(12), 2_147_483_647);
    assert!(!row.get::<bool, _>(13));
    assert_eq!(row.get::<String, _>(14), "XY");
    assert_eq!(row.get::<String, _>(15), "Account", "a one-label enum works (the official client fails on it)");
    assert_eq!(row.get::<String, _>(16), "192.0.2.1");
    assert_eq!(row.get::<String, _>(17), "123e4567-e89b-12d3-a456-426614174000");
    assert_eq!(row.get::<Vec<i64>, _>(18), [1, -2, i64::MAX]);
    assert_eq!(row.get::<serde_json::Value, _>(19), json!({"free": "form"}));

    let nulls = f.rows("SELECT uuid IS NULL, settings IS NULL, sis_ids IS NULL, score IS NULL, name FROM canvas.accounts WHERE id = 2").await;
    let n = &nulls[0];
    assert!(n.get::<bool, _>(0) && n.get::<bool, _>(1) && n.get::<bool, _>(2) && n.get::<bool, _>(3));
    assert_eq!(n.get::<String, _>(4), "");

    let types = f
        .texts(
            "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
             FROM pg_attribute a WHERE a.attrelid = 'canvas.accounts'::regclass AND a.attnum > 0 ORDER BY a.attnum",
        )
        .await;
    let types: Vec<String> = types.into_iter().flatten().collect();
    assert_eq!(
        types,
        [
            "id bigint not null",
            "name character varying(255) not null",
            "uuid text",
            "workflow_state canvas.accounts__workflow_state not null",
            "created_at timestamp without time zone",
            "updated_at timestamp without time zone",
            "settings jsonb",
            "sis_ids text[]",
            "score double precision",
            "ratio real",
            "amount numeric(5,2)",
            "birth_date date",
            "small smallint",
            "quota integer",
            "is_root boolean",
            "code character(2)",
            "context_type canvas.accounts__context_type",
            "ip inet",
            "ref_uuid uuid",
            "ids bigint[]",
            "extra jsonb",
        ]
    );
    assert_eq!(
        f.texts("SELECT conname::text FROM pg_constraint WHERE conrelid = 'canvas.accounts'::regclass").await,
        [Some("pk_accounts".into())]
    );
    assert_eq!(f.texts("SELECT col_description('canvas.accounts'::regclass, 1)").await, [Some("Primary key".into())]);
}

#[tokio::test]
async fn init_resumes_from_the_database_and_publishes_the_table_only_when_whole() {
    let f = Fixture::new().await; // two rows per object
    f.accounts((1..=7).map(|i| account(i, &format!("a{i}"))).collect());
    let mut r = f.replicator().await;

    // A budget already spent: the job is started and saved, nothing is loaded.
    let first = r.init(&TableRef::new("canvas", "accounts"), support::budget_zero()).await.unwrap();
    assert_eq!(first.status, Status::InProgress);
    assert!(first.cursor.is_some());
    assert!(f.rows("SELECT 1 FROM pg_tables WHERE schemaname = 'canvas' AND tablename = 'accounts'").await.is_empty());
    assert!(f.rows("SELECT 1 FROM instructure_dap.table_sync").await.is_empty());

    // Load one object, then the second arrives cut off on every attempt: the call fails.
    f.emulator.inject_after(emulator::Endpoint::Download, emulator::FaultKind::TruncatedGzip, 1, 3);
    let second = f.replicator().await.init(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await;
    let err = second.expect_err("a truncated download must fail the call").to_string();
    assert!(err.contains("unexpected end of file"), "{err}");
    let staged = f.texts("SELECT count(*)::text FROM cd2_aws_staging_canvas.accounts").await;
    assert_eq!(staged, [Some("2".into())], "the first object stays loaded; the failed one left no rows");
    assert!(f.rows("SELECT 1 FROM pg_tables WHERE schemaname = 'canvas' AND tablename = 'accounts'").await.is_empty());

    // A new process resumes the same job and finishes exactly.
    let third =
        f.replicator().await.replicate(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!(third.status, Status::Success);
    assert_eq!(third.counts.inserted, 7);
    assert_eq!(
        f.texts("SELECT count(DISTINCT id)::text || '/' || count(*)::text FROM canvas.accounts").await,
        [Some("7/7".into())]
    );
    let jobs =
        f.emulator.requests().iter().filter(|r| r.starts_with("POST /dap/query/canvas/table/accounts/data")).count();
    assert_eq!(jobs, 1, "the saved job was resumed, not started again");
    assert!(f.rows("SELECT 1 FROM cd2_aws.object_done").await.is_empty());
}

#[tokio::test]
async fn sync_resumes_and_advances_metadata_with_the_last_object() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    f.emulator.commit("canvas", "accounts", (10..15).map(|i| account(i, "new")).collect(), vec![]);

    let mut r = f.replicator().await;
    let partial = r.sync(&TableRef::new("canvas", "accounts"), support::budget_zero()).await.unwrap();
    assert_eq!(partial.status, Status::InProgress);
    let before = f.texts(r#"SELECT "timestamp"::text FROM instructure_dap.table_sync"#).await;
    assert_eq!(before, [Some("2024-05-01 10:00:01".into())], "not advanced before the data");
    let done = r.sync(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!(done.status, Status::Success);
    assert_eq!(done.counts.inserted, 5);
    assert_eq!(
        f.texts(r#"SELECT "timestamp"::text FROM instructure_dap.table_sync"#).await,
        [Some("2024-05-01 10:00:02".into())]
    );
}

#[tokio::test]
async fn what_dap_drops_is_reported_in_the_run_it_happens_and_not_in_the_next() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    // DAP drops a column and an enum label.
    let mut schema = accounts_schema(1);
    let values = schema["properties"]["value"]["properties"].as_object_mut().unwrap();
    values.shift_remove("uuid");
    values.insert("workflow_state".into(), json!({"type": "string", "enum": ["active", "deleted"]}));
    f.emulator.put_schema("canvas", "accounts", schema);
    f.emulator.commit("canvas", "accounts", vec![account(2, "two")], vec![]);
    let out = f.replicate("accounts").await.unwrap();
    let notes = out.notes.join("\n");
    assert!(notes.contains("column `uuid` is no longer in the DAP schema; kept"), "{notes}");
    assert!(notes.contains("label `suspended` is no longer in the DAP schema; kept"), "{notes}");
    // The next run: the same schema, new data, nothing to report.
    f.emulator.commit("canvas", "accounts", vec![account(3, "three")], vec![]);
    let out = f.replicate("accounts").await.unwrap();
    assert_eq!((out.status, out.counts.inserted), (Status::Success, 1));
    assert_eq!(out.notes, Vec::<String>::new(), "reported once, in the run where it happened");
}

#[tokio::test]
async fn schema_changes_keep_data_and_users_views() {
    let f = Fixture::new().await;
    let mut a = account(1, "one");
    a["uuid"] = json!("u-1");
    a["small"] = json!(7);
    f.accounts(vec![a, account(2, "two")]);
    f.replicate("accounts").await.unwrap();
    // A reader's views in the reader's schema, and a grant to another reader.
    let (r, other) = (f.reader("analyst").await, f.reader("viewer").await);
    f.exec("CREATE FUNCTION public.no_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;")
        .await;
    f.exec_as(
        &r,
        &format!(
            "CREATE VIEW {r}.account_names WITH (security_barrier = true) AS SELECT id, name, small FROM canvas.accounts;
             COMMENT ON VIEW {r}.account_names IS 'names';
             COMMENT ON COLUMN {r}.account_names.name IS 'the name';
             GRANT SELECT ON {r}.account_names TO {other};
             CREATE VIEW {r}.big_small AS SELECT * FROM {r}.account_names WHERE small > 5;
             CREATE MATERIALIZED VIEW {r}.smalls AS SELECT id, small, uuid FROM canvas.accounts;
             CREATE UNIQUE INDEX smalls_id ON {r}.smalls (id);
             GRANT SELECT ON {r}.smalls TO {other};
             GRANT UPDATE (name) ON {r}.account_names TO {other};
             CREATE TRIGGER account_names_no_insert INSTEAD OF INSERT ON {r}.account_names
                 FOR EACH ROW EXECUTE FUNCTION public.no_writes();
             CREATE RULE big_small_no_delete AS ON DELETE TO {r}.big_small DO INSTEAD NOTHING"
        ),
    )
    .await;

    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    let mut b = account(3, "three");
    b["small"] = json!(100_000);
    b["workflow_state"] = json!("pending");
    b["new_col"] = json!("fresh");
    f.emulator.commit("canvas", "accounts", vec![b], vec![]);
    let out = f.replicate("accounts").await.unwrap();
    assert_eq!(out.status, Status::Success, "{out:?}");
    let notes = out.notes.join("\n");
    assert!(notes.contains("added column `new_col`"), "{notes}");
    assert!(notes.contains("column `uuid` is no longer in the DAP schema; kept"), "{notes}");
    assert!(notes.contains("type smallint -> integer"), "{notes}");
    assert!(notes.contains("added label `pending`"), "{notes}");
    assert!(notes.contains("recreated 3 dependent view(s)"), "{notes}");

    assert_eq!(f.texts("SELECT small::text FROM canvas.accounts WHERE id = 3").await, [Some("100000".into())]);
    assert_eq!(
        f.texts("SELECT uuid FROM canvas.accounts WHERE id = 1").await,
        [Some("u-1".into())],
        "removed column keeps its data"
    );
    assert_eq!(f.texts("SELECT new_col FROM canvas.accounts WHERE id = 3").await, [Some("fresh".into())]);
    assert_eq!(f.texts(&format!("SELECT count(*)::text FROM {r}.big_small")).await, [Some("2".into())]);
    assert_eq!(
        f.texts(&format!("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{r}.account_names'::regclass AND attname = 'small'")).await,
        [Some("integer".into())],
        "the view follows the new type"
    );
    assert_eq!(
        f.texts(&format!("SELECT obj_description('{r}.account_names'::regclass, 'pg_class')")).await,
        [Some("names".into())]
    );
    assert_eq!(
        f.texts(&format!("SELECT col_description('{r}.account_names'::regclass, 2)")).await,
        [Some("the name".into())]
    );
    // Kept as the reader made them, by the replicating role, which never held the
    // reader's privileges.
    let kept = format!(
        "SELECT string_agg(pg_get_userbyid(relowner)::text, ',' ORDER BY relname) FROM pg_class
         WHERE relnamespace = '{r}'::regnamespace AND relkind IN ('v', 'm')"
    );
    assert_eq!(f.texts(&kept).await, [Some(format!("{r},{r},{r}"))]);
    assert_eq!(
        f.texts(&format!(
            "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = '{r}.account_names'::regclass"
        ))
        .await,
        [Some("security_barrier=true".into())]
    );
    assert_eq!(
        f.texts(&format!("SELECT has_table_privilege('{other}', '{r}.account_names', 'SELECT')::text || has_table_privilege('{other}', '{r}.smalls', 'SELECT')::text")).await,
        [Some("truetrue".into())]
    );
    assert_eq!(
        f.texts(&format!("SELECT indexname::text FROM pg_indexes WHERE schemaname = '{r}' AND tablename = 'smalls'"))
            .await,
        [Some("smalls_id".into())]
    );
    assert_eq!(
        f.texts(&format!("SELECT has_column_privilege('{other}', '{r}.account_names', 'name', 'UPDATE')::text")).await,
        [Some("true".into())],
        "column grants survive"
    );
    assert_eq!(
        f.texts(&format!("SELECT tgname::text FROM pg_trigger WHERE tgrelid = '{r}.account_names'::regclass")).await,
        [Some("account_names_no_insert".into())]
    );
    assert_eq!(
        f.texts(&format!("SELECT rulename::text FROM pg_rules WHERE schemaname = '{r}' AND tablename = 'big_small'"))
            .await,
        [Some("big_small_no_delete".into())]
    );
    // Recreated with the data of the moment (before this sync's rows), as a REFRESH would.
    assert_eq!(f.texts(&format!("SELECT count(*)::text FROM {r}.smalls")).await, [Some("2".into())]);
    assert_eq!(f.texts("SELECT schema_version::text FROM instructure_dap.table_sync").await, [Some("2".into())]);
}

#[tokio::test]
async fn web_logs_may_repeat_keys() {
    let f = Fixture::new().await;
    let schema = json!({"type": "object", "$schema": "http://json-schema.org/draft-07/schema#", "properties": {
        "key": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        "value": {"type": "object", "properties": {"url": {"type": "string"}}}
    }});
    f.emulator.put_schema("canvas_logs", "web_logs", schema);
    // Upstream repeats keys here: `a` comes twice, in different objects (two rows per
    // object) and within one.
    f.emulator.commit(
        "canvas_logs",
        "web_logs",
        vec![json!({"id": "a", "url": "/1"}), json!({"id": "b", "url": "/2"})],
        vec![],
    );
    f.emulator.commit(
        "canvas_logs",
        "web_logs",
        vec![json!({"id": "a", "url": "/3"}), json!({"id": "c", "url": "/4"}), json!({"id": "c", "url": "/5"})],
        vec![],
    );
    let out =
        f.replicator().await.replicate(&TableRef::new("canvas_logs", "web_logs"), Budget::unlimited()).await.unwrap();
    assert_eq!(out.status, Status::Success);
    let rows: Vec<String> =
        f.texts("SELECT id || url FROM canvas_logs.web_logs ORDER BY id").await.into_iter().flatten().collect();
    assert_eq!(rows, ["a/3", "b/2", "c/5"], "the latest event of each key wins");
}

#[tokio::test]
async fn a_job_dap_is_still_preparing_at_the_end_of_the_budget_is_resumed_not_restarted() {
    let f = Fixture::with_settings(emulator::Settings {
        polls_before_complete: 1_000_000,
        ..emulator::Settings::default()
    })
    .await;
    f.accounts((1..=3).map(|i| account(i, "x")).collect());
    let first = f
        .replicator()
        .await
        .init(&TableRef::new("canvas", "accounts"), Budget::of(std::time::Duration::from_millis(50)))
        .await
        .unwrap();
    assert_eq!(first.status, Status::InProgress);
    let state = f.texts(r#"SELECT job->>'state' FROM cd2_aws.job"#).await;
    assert_eq!(state, [Some("pending".into())]);
    assert_eq!(first.cursor, f.texts(r#"SELECT job->>'id' FROM cd2_aws.job"#).await[0]);

    f.emulator.update_settings(|s| s.polls_before_complete = 0);
    let second = f.replicate("accounts").await.unwrap();
    assert_eq!((second.status, second.counts.inserted), (Status::Success, 3));
    let jobs =
        f.emulator.requests().iter().filter(|r| r.starts_with("POST /dap/query/canvas/table/accounts/data")).count();
    assert_eq!(jobs, 1, "the pending job was polled again, not started anew");
}

#[tokio::test]
async fn a_snapshot_whose_job_expires_twice_in_a_row_fails_clearly_instead_of_starting_over_for_ever() {
    use emulator::{Endpoint, FaultKind};
    let f = Fixture::new().await;
    f.accounts((1..=6).map(|i| account(i, "x")).collect());
    // One object of three loads, then the second stalls past the budget: in progress.
    let partly = async || {
        f.emulator.inject_after(Endpoint::Download, FaultKind::Stall(std::time::Duration::from_secs(60)), 1, 1);
        let budget = Budget::of(std::time::Duration::from_millis(1500));
        let out = f.replicator().await.init(&TableRef::new("canvas", "accounts"), budget).await.unwrap();
        assert_eq!(out.status, Status::InProgress);
        assert_eq!(f.texts("SELECT count(*)::text FROM cd2_aws.object_done").await, [Some("1".into())]);
    };
    // DAP deletes a job 24 hours after it started: make the saved one about to go.
    let expire = async || {
        f.exec(r#"UPDATE cd2_aws.job SET job = jsonb_set(job, '{expires_at}', '"2020-01-01T00:00:00Z"')"#).await;
    };
    partly().await;
    expire().await;
    // The first expiry starts over with a new job.
    partly().await;
    let jobs =
        || f.emulator.requests().iter().filter(|r| r.starts_with("POST /dap/query/canvas/table/accounts/data")).count();
    assert_eq!(jobs(), 2);
    expire().await;
    // The second in a row fails, saying why and what to do, and leaves a clean start.
    let err = f.replicator().await.init(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap_err();
    assert!(matches!(err, replica::ReplicaError::JobExpired { loaded: 1, total: 3, times: 2, .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("canvas.accounts") && text.contains("1 of 3 objects") && text.contains("max_calls"),
        "{text}"
    );
    assert!(!err.is_transient());
    assert!(f.rows("SELECT 1 FROM cd2_aws.job UNION ALL SELECT 1 FROM cd2_aws.job_expired").await.is_empty());
    // The next run loads it from the start.
    let out = f.replicate("accounts").await.unwrap();
    assert_eq!((out.status, out.counts.inserted), (Status::Success, 6));
    assert_eq!(jobs(), 3);
}

#[tokio::test]
async fn a_budget_that_ends_mid_object_rolls_it_back_and_the_next_call_loads_it_again() {
    let f =
        Fixture::with_settings(emulator::Settings { rows_per_object: 10_000, ..emulator::Settings::default() }).await;
    // One object of 6,000 long rows: its first half is several COPY sends.
    f.accounts((1..=6000).map(|i| account(i, &format!("{i:>200}"))).collect());
    f.emulator.inject(emulator::Endpoint::Download, emulator::FaultKind::Stall(std::time::Duration::from_secs(60)), 1);
    let budget = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let first = f.replicator().await.init(&TableRef::new("canvas", "accounts"), Budget::of(budget)).await.unwrap();
    assert!(started.elapsed() < budget + std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(first.status, Status::InProgress);
    assert_eq!(
        f.texts("SELECT count(*)::text FROM cd2_aws_staging_canvas.accounts").await,
        [Some("0".into())],
        "the unfinished object was rolled back"
    );
    assert!(f.rows("SELECT 1 FROM cd2_aws.object_done").await.is_empty());

    let second =
        f.replicator().await.replicate(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!((second.status, second.counts.inserted), (Status::Success, 6000));
    assert_eq!(
        f.texts("SELECT count(DISTINCT id)::text || '/' || count(*)::text FROM canvas.accounts").await,
        [Some("6000/6000".into())]
    );
}

#[tokio::test]
async fn a_recreated_materialized_view_runs_its_query_as_its_owner() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one"), account(2, "two")]);
    f.replicate("accounts").await.unwrap();
    // The reader's view calls a function that reports who runs it.
    let r = f.reader("analyst").await;
    f.exec("CREATE FUNCTION public.who_runs() RETURNS text LANGUAGE sql VOLATILE AS 'SELECT current_user::text'").await;
    f.exec_as(
        &r,
        &format!("CREATE MATERIALIZED VIEW {r}.runners AS SELECT id, public.who_runs() AS runner FROM canvas.accounts"),
    )
    .await;
    let runners = format!("SELECT string_agg(DISTINCT runner, ',') FROM {r}.runners");
    assert_eq!(f.texts(&runners).await, [Some(r.clone())]);

    // A type change makes the keeper drop and recreate the view.
    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    let out = f.replicate("accounts").await.unwrap();
    assert!(out.notes.join("\n").contains("recreated 1 dependent view(s)"), "{:?}", out.notes);
    assert_eq!(
        f.texts(&runners).await,
        [Some(r.clone())],
        "never run with the replicator's or the keeper's privileges"
    );
    assert_eq!(
        f.texts(&format!("SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = '{r}.runners'::regclass"))
            .await,
        [Some(r.clone())]
    );
}

/// A view the keeper may not keep (not a reader's, not the replicating role's) stops a type
/// change with its name and what to do; nothing is changed, and once it is gone the change
/// goes through.
#[tokio::test]
async fn a_view_of_someone_not_a_reader_stops_a_type_change_with_its_name() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    f.exec("CREATE VIEW public.dba_names AS SELECT id, small FROM canvas.accounts").await;
    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    let e = f.replicate("accounts").await.unwrap_err();
    let message = e.to_string();
    assert!(message.contains("view public.dba_names (owner "), "{message}");
    assert!(message.contains("drop it"), "says what to do: {message}");
    assert!(!e.is_transient(), "a view in the way stays in the way: {message}");
    assert_eq!(
        f.texts("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname = 'small'").await,
        [Some("smallint".into())],
        "nothing changed"
    );
    assert_eq!(f.rows("SELECT 1 FROM public.dba_names").await.len(), 1, "the view is still there");
    f.exec("DROP VIEW public.dba_names").await;
    assert_eq!(f.replicate("accounts").await.unwrap().status, Status::Success);
}

/// 1,000 accounts in objects of 500, each with a `small` from 1 to 300.
async fn thousand_accounts() -> Fixture {
    let f = Fixture::with_settings(emulator::Settings { rows_per_object: 500, ..emulator::Settings::default() }).await;
    f.accounts(
        (1..=1_000)
            .map(|i| {
                let mut a = account(i, "x");
                a["small"] = json!(i % 300 + 1);
                a
            })
            .collect(),
    );
    f
}

/// A type change on a table too big to rewrite in one call (here: every table, in batches
/// of 100 rows) goes through a shadow column over as many calls as it takes; the table is
/// synced once it is done, with the users' views and indexes on the column kept.
#[tokio::test]
async fn a_type_change_too_big_for_one_call_is_made_in_batches_over_several_calls() {
    let (f, rows) = (thousand_accounts().await, 1_000);
    // `small` required: NOT NULL, which the new column keeps.
    let required = |version| {
        let mut s = accounts_schema(version);
        s["properties"]["value"]["required"].as_array_mut().unwrap().push(json!("small"));
        s
    };
    f.emulator.put_schema("canvas", "accounts", required(1));
    f.replicate("accounts").await.unwrap();
    let reader = f.reader("analyst").await;
    f.exec_as(&reader, &format!("CREATE VIEW {reader}.smalls AS SELECT id, small FROM canvas.accounts")).await;
    f.exec(
        "CREATE INDEX accounts_small ON canvas.accounts (small);
         DO $$ BEGIN CREATE ROLE cd2_column_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         GRANT SELECT (id, small) ON canvas.accounts TO cd2_column_reader;",
    )
    .await;
    let sum = "SELECT sum(small)::text FROM canvas.accounts";
    let before = f.texts(sum).await;

    f.emulator.put_schema("canvas", "accounts", required(2));
    let mut b = account(rows + 1, "after");
    b["small"] = json!(100_000);
    f.emulator.commit("canvas", "accounts", vec![b], vec![]);

    let mut r = f.replicator().await;
    r.set_retype(replica::RetypeSettings { in_place_max_bytes: 0, batch_rows: 100 });
    let converted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = converted.clone();
    r.on_progress(std::sync::Arc::new(move |p: &replica::Progress<'_>| {
        if let replica::Progress::Converted { rows, .. } = p {
            seen.fetch_add(*rows, std::sync::atomic::Ordering::Relaxed);
        }
    }));
    let mut notes = Vec::new();
    let mut calls = 0;
    // Calls whose budget is spent from the start: each converts one batch.
    while calls == 0 || !f.rows(r#"SELECT 1 FROM cd2_aws.retype"#).await.is_empty() {
        calls += 1;
        assert!(calls < 100, "the change never ends");
        let out = r.sync(&TableRef::new("canvas", "accounts"), support::budget_zero()).await.unwrap();
        assert_eq!(out.status, Status::InProgress, "{out:?}");
        notes.extend(out.notes);
        if calls == 3 {
            assert_eq!(f.texts(sum).await, before, "the old column serves readers meanwhile");
            assert!(
                f.rows(&format!("SELECT 1 FROM canvas.accounts WHERE id = {}", rows + 1)).await.is_empty(),
                "not synced while the change is under way"
            );
        }
    }
    assert!(calls >= 10, "{rows} rows in batches of 100 took {calls} calls");
    assert_eq!(converted.load(std::sync::atomic::Ordering::Relaxed), rows as u64, "each row converted once");
    let notes = notes.join("\n");
    assert!(notes.contains("column `small`: type smallint -> integer, converting in batches"), "{notes}");
    assert!(notes.contains("column `small`: now integer"), "{notes}");
    assert_eq!(notes.matches("converting in batches").count(), 1, "said once: {notes}");

    let out = r.sync(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!(out.status, Status::Success, "{out:?}");
    assert_eq!(
        f.texts("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname = 'small'").await,
        [Some("integer".into())]
    );
    assert!(
        f.rows(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname LIKE 'cd2_aws_new_%'"
        )
        .await
        .is_empty(),
        "no shadow column left"
    );
    assert_eq!(
        f.texts(&format!("SELECT small::text FROM {reader}.smalls WHERE id = {}", rows + 1)).await,
        [Some("100000".into())],
        "synced after the change, through the user's view"
    );
    let after: i64 = f.texts(sum).await[0].as_deref().unwrap().parse().unwrap();
    let before: i64 = before[0].as_deref().unwrap().parse().unwrap();
    assert_eq!(after, before + 100_000, "every value converted");
    assert_eq!(
        f.texts("SELECT indexdef FROM pg_indexes WHERE indexname = 'accounts_small'").await,
        [Some("CREATE INDEX accounts_small ON canvas.accounts USING btree (small)".into())],
        "the user's index is on the new column"
    );
    assert_eq!(
        f.texts("SELECT col_description('canvas.accounts'::regclass, attnum) FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname = 'small'").await,
        [None],
        "the column's own comment (none), not the shadow's"
    );
    assert_eq!(
        f.texts("SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname = 'small'").await,
        [Some("true".into())],
        "still NOT NULL"
    );
    assert_eq!(
        f.texts("SELECT has_column_privilege('cd2_column_reader', 'canvas.accounts', 'small', 'SELECT')::text").await,
        [Some("true".into())],
        "the column's grant kept"
    );
}

/// Five accounts replicated, then `small` widened by DAP, and the first call of its
/// change in batches of 2 made: the change is under way.
async fn small_change_started() -> (Fixture, replica::Replicator) {
    let f = Fixture::new().await;
    f.accounts((1..=5).map(|i| account(i, "x")).collect());
    f.replicate("accounts").await.unwrap();
    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    let mut r = f.replicator().await;
    r.set_retype(replica::RetypeSettings { in_place_max_bytes: 0, batch_rows: 2 });
    let out = r.sync(&TableRef::new("canvas", "accounts"), support::budget_zero()).await.unwrap();
    assert_eq!(out.status, Status::InProgress, "{out:?}");
    (f, r)
}

/// A change under way that DAP takes back (the type is the old one again) is given up:
/// the shadow column goes and the table syncs at once.
#[tokio::test]
async fn a_type_change_under_way_is_given_up_when_dap_takes_it_back() {
    let (f, mut r) = small_change_started().await;
    assert_eq!(f.texts(r#"SELECT "column" FROM cd2_aws.retype"#).await, [Some("small".into())]);

    f.emulator.put_schema("canvas", "accounts", accounts_schema(1));
    f.emulator.commit("canvas", "accounts", vec![account(6, "six")], vec![]);
    let out = r.sync(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!(out.status, Status::Success, "{out:?}");
    assert!(f.rows(r#"SELECT 1 FROM cd2_aws.retype"#).await.is_empty());
    assert!(
        f.rows("SELECT 1 FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname LIKE 'cd2_aws_new_%' AND NOT attisdropped")
            .await
            .is_empty(),
        "the shadow column is gone"
    );
    assert_eq!(
        f.texts("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname = 'small'").await,
        [Some("smallint".into())]
    );
    assert_eq!(f.texts("SELECT count(*)::text FROM canvas.accounts").await, [Some("6".into())]);
}

/// Syncs with a spent budget (one conversion batch a call) until the table's type changes
/// are done or a call fails; answers the failure, if any.
async fn convert_until_done(f: &Fixture, r: &mut replica::Replicator) -> Option<replica::ReplicaError> {
    for _ in 0..100 {
        if let Err(e) = r.sync(&TableRef::new("canvas", "accounts"), support::budget_zero()).await {
            return Some(e);
        }
        if f.rows(r#"SELECT 1 FROM cd2_aws.retype"#).await.is_empty() {
            return None;
        }
    }
    panic!("the change never ends");
}

/// The primary key's type changed while a conversion was under way: the key it had got to
/// was recorded in the old type's order (as numbers, 1000 comes after 300; as text, before),
/// so the conversion starts over and no row is left unconverted.
#[tokio::test]
async fn a_key_type_change_mid_conversion_starts_it_over_and_no_row_is_skipped() {
    let f = thousand_accounts().await;
    f.replicate("accounts").await.unwrap();
    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    let mut r = f.replicator().await;
    r.set_retype(replica::RetypeSettings { in_place_max_bytes: 0, batch_rows: 100 });
    for _ in 0..3 {
        let out = r.sync(&TableRef::new("canvas", "accounts"), support::budget_zero()).await.unwrap();
        assert_eq!(out.status, Status::InProgress, "{out:?}");
    }
    assert_eq!(f.texts(r#"SELECT last_key FROM cd2_aws.retype"#).await, [Some("300".into())]);

    let mut text_key = accounts_schema(2);
    text_key["properties"]["key"]["properties"]["id"] = json!({"type": "string"});
    f.emulator.put_schema("canvas", "accounts", text_key);
    assert!(convert_until_done(&f, &mut r).await.is_none());
    assert_eq!(
        f.texts("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname IN ('id', 'small') ORDER BY attname").await,
        [Some("text".into()), Some("integer".into())]
    );
    assert_eq!(
        f.texts("SELECT count(*)::text FROM canvas.accounts WHERE small IS NULL").await,
        [Some("0".into())],
        "every row converted, 1000 included"
    );
}

/// A view made while a change is under way takes the shadow column in (`SELECT *`): the
/// change fails with the view's name and what to do, and finishes once the view is gone.
#[tokio::test]
async fn a_view_on_the_shadow_column_stops_the_change_with_its_name_until_it_is_dropped() {
    let (f, mut r) = small_change_started().await;
    f.exec("CREATE VIEW public.everything AS SELECT * FROM canvas.accounts").await;

    let err = convert_until_done(&f, &mut r).await.expect("the swap is refused");
    assert!(matches!(err, replica::ReplicaError::RetypeBlocked { .. }), "{err:?}");
    let line = err.to_string();
    assert!(line.contains("public.everything") && line.contains("column `small`"), "{line}");
    assert!(!err.is_transient());
    // Taking the change back is refused the same way, not with PostgreSQL's 2BP01.
    f.emulator.put_schema("canvas", "accounts", accounts_schema(1));
    let err = r.sync(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap_err();
    assert!(matches!(err, replica::ReplicaError::RetypeBlocked { .. }), "{err:?}");

    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    f.exec("DROP VIEW public.everything").await;
    let out = r.sync(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!(out.status, Status::Success, "{out:?}");
    assert!(f.rows(r#"SELECT 1 FROM cd2_aws.retype"#).await.is_empty());
}

/// A table initialized again (dropped by hand and replicated) starts with no change under
/// way, and a record whose shadow column is gone is forgotten instead of failing every sync.
#[tokio::test]
async fn a_change_left_by_a_replaced_table_is_forgotten() {
    let (f, mut r) = small_change_started().await;
    assert_eq!(f.rows(r#"SELECT 1 FROM cd2_aws.retype"#).await.len(), 1);

    f.exec("DROP TABLE canvas.accounts; DELETE FROM instructure_dap.table_sync").await;
    f.emulator.put_schema("canvas", "accounts", accounts_schema(1)); // the emulator's rows still have `uuid`
    let out = r.replicate(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!(out.status, Status::Success, "{out:?}");
    assert!(f.rows(r#"SELECT 1 FROM cd2_aws.retype"#).await.is_empty(), "the init forgot it");

    f.exec(
        r#"INSERT INTO cd2_aws.retype ("namespace", "table", "column", "shadow", "target_type")
           VALUES ('canvas', 'accounts', 'small', 'cd2_aws_new_99', 'integer')"#,
    )
    .await;
    let out = r.sync(&TableRef::new("canvas", "accounts"), Budget::unlimited()).await.unwrap();
    assert_eq!(out.status, Status::Success, "{out:?}");
    assert!(f.rows(r#"SELECT 1 FROM cd2_aws.retype"#).await.is_empty());
}

/// Putting the converted column in place had the whole call and still ran out (here: a
/// materialized view over the table takes longer to refresh than a statement may take):
/// it fails with what to do instead of being tried again, call after call.
#[tokio::test]
async fn a_swap_that_cannot_fit_in_a_call_fails_with_what_to_do() {
    let f = Fixture::new().await;
    f.accounts((1..=5).map(|i| account(i, "x")).collect());
    f.replicate("accounts").await.unwrap();
    let reader = f.reader("analyst").await;
    let slow = format!("{reader}.slow");
    f.exec_as(&reader, &format!("CREATE MATERIALIZED VIEW {slow} AS SELECT a.id FROM canvas.accounts a, pg_sleep(3)"))
        .await;
    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    let mut r = f.replicator().await;
    r.set_retype(replica::RetypeSettings { in_place_max_bytes: 0, batch_rows: 100 });

    let err = convert_until_done(&f, &mut r).await.expect("the swap cannot fit");
    assert!(matches!(err, replica::ReplicaError::RetypeTooSlow { views: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("RENAME COLUMN cd2_aws_new_"), "{err}");
    assert_eq!(
        f.texts("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname = 'small'").await,
        [Some("smallint".into())],
        "rolled back whole"
    );
    assert_eq!(f.rows(&format!("SELECT 1 FROM {slow}")).await.len(), 5, "the view is still there");
}

/// DAP narrowing a column's type (`varchar(255)` to `varchar(100)`): a cast would cut the
/// values longer than that; the column keeps its type, the run says so once, and the table
/// goes on syncing.
#[tokio::test]
async fn a_narrowed_type_is_kept_wide_and_no_value_is_cut() {
    let f = Fixture::new().await;
    let long = "x".repeat(200);
    f.accounts(vec![account(1, &long)]);
    f.replicate("accounts").await.unwrap();
    let mut narrow = accounts_schema(1);
    narrow["properties"]["value"]["properties"]["name"]["maxLength"] = json!(100);
    f.emulator.put_schema("canvas", "accounts", narrow);
    f.emulator.commit("canvas", "accounts", vec![account(2, "two")], vec![]);

    let out = f.replicate("accounts").await.unwrap();
    assert_eq!(out.status, Status::Success, "{out:?}");
    let notes = out.notes.join("\n");
    assert!(
        notes.contains("column `name`: DAP narrowed its type from character varying(255) to varchar(100)"),
        "{notes}"
    );
    assert_eq!(
        f.texts("SELECT length(name)::text FROM canvas.accounts ORDER BY id").await,
        [Some("200".into()), Some("3".into())],
        "nothing cut, and the table synced"
    );
    assert_eq!(
        f.texts("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'canvas.accounts'::regclass AND attname = 'name'").await,
        [Some("character varying(255)".into())]
    );
    let again = f.replicate("accounts").await.unwrap();
    assert!(!again.notes.join("\n").contains("narrowed"), "said once: {:?}", again.notes);
}

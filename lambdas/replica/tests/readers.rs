//! The readers the bootstrap's setup makes ([`replica::setup`]), logged in as themselves:
//! what a reader can and cannot do, tables made after it, a reader no longer named, and
//! the replicating role, which never holds a reader's privileges.

mod support;

use sqlx::Connection as _;
use support::{Fixture, account, accounts_schema};

#[tokio::test]
async fn a_reader_reads_the_replica_and_nothing_more() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    let r = f.reader("analyst").await;
    // A table made after the reader: readable through the default privileges.
    f.emulator.put_schema("canvas", "users", accounts_schema(1));
    f.emulator.commit("canvas", "users", vec![account(7, "seven")], vec![]);
    f.replicate("users").await.unwrap();

    for sql in [
        "SELECT * FROM canvas.accounts".to_owned(),
        "SELECT * FROM canvas.users".to_owned(),
        "SELECT * FROM instructure_dap.table_sync".to_owned(),
        "SELECT * FROM cd2_aws.retype".to_owned(),
        format!("CREATE VIEW {r}.mine AS SELECT id FROM canvas.users"),
        format!("CREATE TABLE {r}.notes (id bigint)"),
    ] {
        f.try_as(&r, &sql).await.unwrap_or_else(|e| panic!("a reader may: {sql}: {e}"));
    }
    let keeper = format!("{}_keeper", f.app);
    for sql in [
        "INSERT INTO canvas.accounts (id) VALUES (99)".to_owned(),
        "UPDATE canvas.accounts SET name = 'x'".to_owned(),
        "DELETE FROM canvas.accounts".to_owned(),
        "TRUNCATE canvas.accounts".to_owned(),
        "DELETE FROM instructure_dap.table_sync".to_owned(),
        "CREATE VIEW canvas.mine AS SELECT 1 AS one".to_owned(),
        "CREATE TABLE instructure_dap.mine (id bigint)".to_owned(),
        "CREATE TABLE cd2_aws_staging_canvas.mine (id bigint)".to_owned(),
        "ALTER TABLE canvas.accounts ADD COLUMN mine text".to_owned(),
        format!("SELECT {keeper}.set_aside_views('canvas.accounts')"),
        format!("SET ROLE {}", f.app),
    ] {
        let e = f.try_as(&r, &sql).await.expect_err(&sql);
        assert!(e.contains("permission denied") || e.contains("must be owner"), "{sql}: {e}");
    }
    assert_eq!(f.texts("SELECT count(*)::text FROM canvas.accounts").await, [Some("1".into())]);

    // The replicating role cannot act as the reader, nor read what is the reader's own.
    for sql in [format!("SET ROLE {r}"), format!("SELECT * FROM {r}.notes")] {
        let e = f.try_as(&f.app, &sql).await.expect_err(&sql);
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }

    // A reader the configuration no longer names cannot log in; its schema stays.
    f.forget_reader(&r).await;
    let e = f.try_as(&r, "SELECT 1").await.unwrap_err();
    assert!(e.contains("not permitted to log in"), "{e}");
    let kept = format!("SELECT count(*)::text FROM pg_namespace WHERE nspname = '{r}'");
    assert_eq!(f.texts(&kept).await, [Some("1".into())]);
}

/// The setup refuses names it cannot make safely, before touching anything.
#[tokio::test]
async fn a_reader_named_like_a_role_or_schema_of_the_replication_is_refused() {
    let f = Fixture::new().await;
    let mut admin = f.db.acquire().await.unwrap();
    for reader in ["canvas", "cd2_aws", "Analyst", "pg_reader", &format!("{}_keeper", f.app)] {
        let setup = replica::setup::Setup {
            app: f.app.clone(),
            namespaces: vec!["canvas".into()],
            readers: vec![reader.to_owned()],
            passwords: Default::default(),
            iam: false,
        };
        let e = setup.apply(&mut admin).await.expect_err(reader);
        assert!(e.is_configuration(), "{reader}: {e}");
        assert!(e.to_string().contains(&format!("`{reader}`")), "names it: {e}");
    }
    // A role of that name already there, not made as a reader (the administrator's own,
    // another stack's) is never taken over.
    let theirs = format!("dba_{}", f.app.trim_start_matches("app_t_"));
    f.exec(&format!("CREATE ROLE {theirs} LOGIN CREATEDB")).await;
    let setup = replica::setup::Setup {
        app: f.app.clone(),
        namespaces: vec!["canvas".into()],
        readers: vec![theirs.clone()],
        passwords: Default::default(),
        iam: false,
    };
    let e = setup.apply(&mut admin).await.unwrap_err();
    assert!(e.to_string().contains("not one of this replica's readers"), "{e}");
    let kept = format!("SELECT rolcreatedb::text FROM pg_roles WHERE rolname = '{theirs}'");
    assert_eq!(f.texts(&kept).await, [Some("true".into())], "left as it was");
}

/// A reader with a password (a BI tool's) logs in with that password and nothing else,
/// reads and cannot write; the server keeps only a SCRAM verifier, set again on each
/// setup, and a reader no longer named cannot log in with it.
#[tokio::test]
async fn a_password_reader_logs_in_with_its_password_alone() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    let password = "Gx7bQ2mZk9Lw4RtV8yNc";
    let r = f.password_reader("bi", password).await;
    let login = |password: &str| {
        let url = format!("{}?sslmode=disable", f.url_with_password(&r, password));
        async move { sqlx::PgConnection::connect(&url).await.map_err(|e| replica::error::describe(&e)) }
    };
    let mut c = login(password).await.expect("the reader logs in with its password");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM canvas.accounts").fetch_one(&mut c).await.unwrap();
    assert_eq!(count, 1);
    let e = sqlx::raw_sql("DELETE FROM canvas.accounts").execute(&mut c).await.unwrap_err();
    assert!(replica::error::describe(&e).contains("permission denied"), "{e}");
    c.close().await.unwrap();
    for wrong in ["", "gx7bQ2mZk9Lw4RtV8yNc"] {
        let e = login(wrong).await.unwrap_err();
        assert!(e.contains("password authentication failed"), "{wrong:?}: {e}");
    }
    let stored = format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{r}'");
    let first = f.texts(&stored).await.remove(0).expect("a password is set");
    assert!(first.starts_with("SCRAM-SHA-256$4096:") && !first.contains(password), "{first}");

    // The next setup sets it again (a fresh salt); the password stays the same.
    f.forget_reader("nobody").await;
    assert_ne!(f.texts(&stored).await.remove(0).unwrap(), first);
    login(password).await.expect("the same password still logs in");

    f.forget_reader(&r).await;
    let e = login(password).await.unwrap_err();
    assert!(e.contains("not permitted to log in"), "{e}");
}

/// A materialized view its owner can no longer fill (a reader dropped from the
/// configuration) is put back empty, and the type change goes on, saying so.
#[tokio::test]
async fn a_materialized_view_that_cannot_be_filled_again_is_put_back_empty_and_said() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    let r = f.reader("analyst").await;
    f.exec_as(&r, &format!("CREATE MATERIALIZED VIEW {r}.names AS SELECT id, name, small FROM canvas.accounts")).await;
    f.forget_reader(&r).await;
    f.emulator.put_schema("canvas", "accounts", accounts_schema(2));
    let out = f.replicate("accounts").await.unwrap();
    let notes = out.notes.join("\n");
    assert!(notes.contains("recreated 1 dependent view(s)"), "{notes}");
    assert!(notes.contains(&format!("REFRESH MATERIALIZED VIEW {r}.names: it stays empty")), "{notes}");
    let populated = format!("SELECT relispopulated::text FROM pg_class WHERE oid = '{r}.names'::regclass");
    assert_eq!(f.texts(&populated).await, [Some("false".into())]);
}

/// What the keeper sets aside never outlives its transaction: a commit that did not put
/// the views back fails, and the views are as they were.
#[tokio::test]
async fn views_set_aside_and_not_put_back_fail_the_commit() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    let r = f.reader("analyst").await;
    f.exec_as(&r, &format!("CREATE VIEW {r}.names AS SELECT id, name FROM canvas.accounts")).await;
    let keeper = format!("{}_keeper", f.app);
    let e = f
        .try_as(&f.app, &format!("BEGIN; SELECT {keeper}.set_aside_views('canvas.accounts'); COMMIT;"))
        .await
        .unwrap_err();
    assert!(e.contains("were not put back"), "{e}");
    assert_eq!(f.rows(&format!("SELECT 1 FROM {r}.names")).await.len(), 1, "the view is still there");
}

/// A database no setup prepared (replicated by its owner, `cargo xtask replicate` as an
/// administrator): the same functions, made in `pg_temp`, keep the views.
#[tokio::test]
async fn without_a_keeper_the_session_s_own_functions_keep_the_views() {
    let f = Fixture::new().await;
    f.accounts(vec![account(1, "one")]);
    f.replicate("accounts").await.unwrap();
    f.exec("CREATE VIEW public.names AS SELECT id, name FROM canvas.accounts").await;
    let mut admin = f.db.begin().await.unwrap();
    assert_eq!(replica::views::set_aside(&mut admin, "canvas", "accounts").await.unwrap(), 1);
    let exists = "SELECT to_regclass('public.names') IS NOT NULL";
    assert!(!sqlx::query_scalar::<_, bool>(exists).fetch_one(&mut *admin).await.unwrap(), "set aside");
    assert!(replica::views::put_back(&mut admin, "canvas", "accounts").await.unwrap().is_empty());
    admin.commit().await.unwrap();
    assert_eq!(f.rows("SELECT 1 FROM public.names").await.len(), 1);
}

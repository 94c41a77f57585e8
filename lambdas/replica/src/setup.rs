//! What an administrator sets up once before the replicator's first call (the bootstrap
//! custom resource runs it on every Create and Update; the tests run it on their databases),
//! idempotently, in one transaction:
//!
//! - the **replicating role** (`app`): login (through IAM database authentication when
//!   `iam`), no superuser, no role or database creation; it owns the schemas it writes (the
//!   namespaces, their staging schemas, `instructure_dap`, `cd2_aws`) and the metadata tables;
//! - the **readers**: a `NOLOGIN` group role (`<app>_readers`) that may read every replicated
//!   namespace and the sync metadata, tables made later included (default privileges), and
//!   a login role for each reader named, each with a schema of its own for views. A reader
//!   reads: it cannot write, nor create in the replicated schemas. A reader dropped from the
//!   configuration keeps its role and schema (they may hold its views) but can no longer
//!   log in or read. A reader logs in with IAM tokens, or with a password (for a BI tool
//!   that knows no other way), which the server receives only as a SCRAM verifier;
//! - the **views keeper** (`<app>_keeper`): a `NOLOGIN` role with the readers' and the
//!   replicating role's privileges, owning the two functions of [`crate::views`], which the
//!   replicating role alone may call. So a DAP type change under a reader's view keeps the
//!   view, and the replicating role never holds the readers' privileges.

use crate::ddl::{META_SCHEMA, OWN_SCHEMA, ensure_schema, metadata_statements, staging_schema};
use crate::error::DbContext as _;
use crate::model::{quote_ident, quote_literal};
use crate::scram::{self, Password};
use crate::views::{keeper_role, keeper_sql};
use crate::{ReplicaError, batch};
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use std::collections::BTreeMap;

/// What to set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The replicating role.
    pub app: String,
    /// The DAP namespaces replicated.
    pub namespaces: Vec<String>,
    /// The readers' login roles.
    pub readers: Vec<String>,
    /// The readers that log in with a password rather than with IAM tokens, and their
    /// passwords (each set on every apply).
    pub passwords: BTreeMap<String, Password>,
    /// Log in with IAM tokens (`rds_iam`); otherwise the administrator gives the roles passwords.
    pub iam: bool,
}

/// The group role every reader is a member of.
pub fn readers_role(app: &str) -> String {
    format!("{app}_readers")
}

/// The longest name PostgreSQL keeps (longer ones are cut, silently).
const MAX_NAME: usize = 63;

impl Setup {
    /// Checks the names, looks at what exists, and makes or mends the rest in one transaction.
    pub async fn apply(&self, db: &mut PgConnection) -> Result<(), ReplicaError> {
        self.check()?;
        let sql = self.sql(db).await?;
        let mut tx = db.begin().await.doing("setup", "beginning the setup's transaction")?;
        batch(&sql).execute(&mut *tx).await.doing("setup", "setting up the roles and their schemas")?;
        // A verifier is bound, never written into a statement: sqlx's slow-statement
        // warning and an error's context never show it (a server that logs statements with
        // their parameters does; a verifier does not give back the password, 40 random
        // letters and digits).
        for (reader, password) in &self.passwords {
            sqlx::query("SELECT set_config('cd2_aws.verifier', $1, true)")
                .bind(scram::verifier(password))
                .execute(&mut *tx)
                .await
                .doing("setup", "setting a reader's password")?;
            let alter = format!(
                "DO $do$ BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', {}, current_setting('cd2_aws.verifier'));
                 EXCEPTION WHEN OTHERS THEN RAISE EXCEPTION '%', SQLERRM USING ERRCODE = SQLSTATE; END $do$",
                quote_literal(reader)
            );
            batch(&alter).execute(&mut *tx).await.doing("setup", "setting a reader's password")?;
        }
        sqlx::query("SELECT set_config('cd2_aws.verifier', '', true)")
            .execute(&mut *tx)
            .await
            .doing("setup", "forgetting the password verifier")?;
        tx.commit().await.doing("setup", "committing the setup")?;
        Ok(())
    }

    fn check(&self) -> Result<(), ReplicaError> {
        let plain = |kind: &str, name: &str, max: usize| {
            if !name.is_empty()
                && name.len() <= max
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && !name.starts_with("pg_")
            {
                Ok(())
            } else {
                Err(ReplicaError::Setup(format!(
                    "the {kind} `{name}` is not a plain name (lower-case letters, digits and `_`, at most {max} characters, not starting with a digit or pg_)"
                )))
            }
        };
        // Room for the `_readers` and `_keeper` of the roles named after it.
        plain("application user", &self.app, MAX_NAME - "_readers".len())?;
        for ns in &self.namespaces {
            plain("namespace", ns, MAX_NAME)?;
        }
        let taken = [self.app.clone(), readers_role(&self.app), keeper_role(&self.app)];
        for (i, reader) in self.readers.iter().enumerate() {
            plain("reader", reader, MAX_NAME)?;
            let schemas = self.schemas();
            if taken.contains(reader) || schemas.contains(reader) || reader == "public" {
                return Err(ReplicaError::Setup(format!(
                    "the reader `{reader}` has the name of a role or schema the replication uses: choose another name"
                )));
            }
            if self.readers[..i].contains(reader) {
                return Err(ReplicaError::Setup(format!("the reader `{reader}` is named twice")));
            }
        }
        if let Some(stranger) = self.passwords.keys().find(|r| !self.readers.contains(r)) {
            return Err(ReplicaError::Setup(format!(
                "a password is given for `{stranger}`, which is not one of the readers"
            )));
        }
        Ok(())
    }

    /// The schemas the replicating role owns.
    fn schemas(&self) -> Vec<String> {
        let mut schemas = vec![META_SCHEMA.to_owned(), OWN_SCHEMA.to_owned()];
        for ns in &self.namespaces {
            schemas.push(ns.clone());
            schemas.push(staging_schema(ns));
        }
        schemas
    }

    /// The setup's statements (run in one transaction by [`Setup::apply`]), after looking
    /// at what exists.
    async fn sql(&self, db: &mut PgConnection) -> Result<String, ReplicaError> {
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1)")
                .bind(
                    [self.app.clone(), readers_role(&self.app), keeper_role(&self.app)]
                        .into_iter()
                        .chain(self.readers.iter().cloned())
                        .collect::<Vec<_>>(),
                )
                .fetch_all(&mut *db)
                .await
                .doing("setup", "looking for the roles")?;
        let has_rds_iam: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'rds_iam')")
                .fetch_one(&mut *db)
                .await
                .doing("setup", "looking for the rds_iam role")?;
        if self.iam && !has_rds_iam {
            return Err(ReplicaError::Setup(
                "the database has no `rds_iam` role, so IAM database authentication is not available: use Aurora or RDS PostgreSQL with IAM authentication on, or set database.iam_auth = false and give the roles passwords".into(),
            ));
        }
        let group = readers_role(&self.app);
        // Members of the group that the configuration no longer names (not the
        // administrator, whom PostgreSQL 16 makes a member of every role it creates).
        // Only roles made as readers count (the keeper holds each): a role someone else
        // added to the group is left as it is.
        let former: Vec<String> = sqlx::query_scalar(
            "SELECT m.rolname::text FROM pg_catalog.pg_auth_members a
             JOIN pg_catalog.pg_roles g ON g.oid = a.roleid JOIN pg_catalog.pg_roles m ON m.oid = a.member
             WHERE g.rolname = $1 AND NOT m.rolname = ANY($2) AND m.rolname <> current_user AND NOT a.admin_option
               AND NOT m.rolsuper
               AND EXISTS (SELECT FROM pg_catalog.pg_auth_members k JOIN pg_catalog.pg_roles kr ON kr.oid = k.member
                           WHERE k.roleid = m.oid AND kr.rolname = $3)
             ORDER BY 1",
        )
        .bind(&group)
        .bind(&self.readers)
        .bind(keeper_role(&self.app))
        .fetch_all(&mut *db)
        .await
        .doing("setup", "looking for former readers")?;
        // The replication's own roles: the application role may predate this setup (a
        // database handed over), but never as a superuser or as the administrator; the
        // group and the keeper are this setup's or nobody's.
        let app_taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1 AND (rolsuper OR rolname = current_user))",
        )
        .bind(&self.app)
        .fetch_one(&mut *db)
        .await
        .doing("setup", "looking at the application role")?;
        let ours_taken: Vec<String> = sqlx::query_scalar(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r
             WHERE r.rolname = ANY($1) AND (r.rolsuper OR r.rolname = current_user OR NOT EXISTS (
                 SELECT FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles k ON k.oid = a.member
                 JOIN pg_catalog.pg_roles p ON p.oid = a.roleid
                 WHERE k.rolname = $2 AND p.rolname = $3))
             ORDER BY 1",
        )
        .bind(vec![group.clone(), keeper_role(&self.app)])
        .bind(keeper_role(&self.app))
        .bind(&self.app)
        .fetch_all(&mut *db)
        .await
        .doing("setup", "looking at the readers' group and the keeper")?;
        if app_taken {
            return Err(ReplicaError::Setup(format!(
                "the application user `{}` is a superuser or the administrator itself: name another role in database.app_username",
                self.app
            )));
        }
        if let Some(taken) = ours_taken.first() {
            return Err(ReplicaError::Setup(format!(
                "the role `{taken}` exists and was not made by this setup (its keeper does not hold `{}`): rename database.app_username, or drop that role",
                self.app
            )));
        }
        // A reader's role is made by the setup, or was: another role of that name (the
        // administrator's, another stack's) is never taken over.
        let foreign: Vec<String> = sqlx::query_scalar(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r
             WHERE r.rolname = ANY($1)
               AND (r.rolname = current_user OR r.rolsuper OR NOT EXISTS (
                   SELECT FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles k ON k.oid = a.member
                   WHERE a.roleid = r.oid AND k.rolname = $2))
             ORDER BY 1",
        )
        .bind(&self.readers)
        .bind(keeper_role(&self.app))
        .fetch_all(&mut *db)
        .await
        .doing("setup", "looking for roles named like the readers")?;
        if let Some(taken) = foreign.first() {
            return Err(ReplicaError::Setup(format!(
                "the reader `{taken}` is the name of a role that is not one of this replica's readers: choose another name in database.readers"
            )));
        }
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *db)
            .await
            .doing("setup", "reading the database name")?;

        let role = |name: &str, attributes: &str| {
            let verb = if existing.iter().any(|e| e == name) { "ALTER" } else { "CREATE" };
            format!("{verb} ROLE {} WITH {attributes};", quote_ident(name))
        };
        let (app, group_q, keeper) =
            (quote_ident(&self.app), quote_ident(&group), quote_ident(&keeper_role(&self.app)));
        let mut sql = vec![
            "SELECT pg_advisory_xact_lock(hashtextextended('cd2_aws:bootstrap', 0));".to_owned(),
            role(&self.app, "LOGIN NOCREATEDB NOCREATEROLE"),
            // To create schemas for the role and objects as it.
            format!("GRANT {app} TO CURRENT_USER;"),
            format!("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {app};", quote_ident(&database)),
        ];
        if self.iam {
            sql.push(format!("GRANT rds_iam TO {app};"));
        }
        for schema in &self.schemas() {
            sql.push(ensure_schema(schema));
            sql.push(format!("ALTER SCHEMA {} OWNER TO {app};", quote_ident(schema)));
        }
        sql.push(format!(
            "COMMENT ON ROLE {app} IS {};",
            quote_literal("cd2-aws: the replication Lambdas; owns the replicated schemas")
        ));
        // The metadata tables, created by the replicating role so that it owns them.
        sql.push(format!("SET ROLE {app};\n{}\nRESET ROLE;", metadata_statements()));

        // The readers: read every replicated namespace and the sync metadata, tables made
        // later included, and nothing else of the replication's.
        sql.push(role(&group, "NOLOGIN"));
        sql.push(format!(
            "COMMENT ON ROLE {group_q} IS {};",
            quote_literal("cd2-aws: may read the replicated tables; its members are the readers")
        ));
        let mut readable: Vec<String> = self.namespaces.clone();
        readable.extend([META_SCHEMA.to_owned(), OWN_SCHEMA.to_owned()]);
        for schema in &readable {
            let s = quote_ident(schema);
            sql.push(format!("GRANT USAGE ON SCHEMA {s} TO {group_q};"));
            sql.push(format!("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {group_q};"));
        }
        // A table is made in its staging schema and moved, with its grants, into its
        // namespace once whole; the staging schemas themselves stay closed to readers.
        let made_in = readable.iter().cloned().chain(self.namespaces.iter().map(|ns| staging_schema(ns)));
        for schema in made_in {
            sql.push(format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {app} IN SCHEMA {} GRANT SELECT ON TABLES TO {group_q};",
                quote_ident(&schema)
            ));
        }
        for reader in &self.readers {
            let r = quote_ident(reader);
            sql.push(role(reader, "LOGIN NOCREATEDB NOCREATEROLE INHERIT"));
            sql.push(format!("GRANT {group_q} TO {r};"));
            sql.push(format!("GRANT CONNECT ON DATABASE {} TO {r};", quote_ident(&database)));
            // One way in: IAM tokens (`rds_iam` refuses a password) or the password set
            // after this batch.
            match (self.passwords.contains_key(reader), self.iam) {
                (false, true) => {
                    sql.push(format!("GRANT rds_iam TO {r};"));
                    sql.push(format!("ALTER ROLE {r} WITH PASSWORD NULL;"));
                }
                (true, _) if has_rds_iam => sql.push(format!(
                    "DO $do$ BEGIN IF pg_catalog.pg_has_role({}, 'rds_iam', 'MEMBER') THEN REVOKE rds_iam FROM {r}; END IF; END $do$;",
                    quote_literal(reader)
                )),
                _ => {}
            }
            // Its own schema, for its views.
            sql.push(format!("GRANT {r} TO CURRENT_USER;"));
            sql.push(format!("CREATE SCHEMA IF NOT EXISTS {r} AUTHORIZATION {r};"));
            sql.push(format!(
                "COMMENT ON ROLE {r} IS {};",
                quote_literal("cd2-aws: a reader of the replica, named in the configuration")
            ));
        }
        for former in &former {
            let r = quote_ident(former);
            sql.push(format!("REVOKE {group_q} FROM {r};"));
            sql.push(format!("ALTER ROLE {r} WITH NOLOGIN;"));
        }

        // The views keeper: the readers' and the replicating role's privileges, used only
        // through its two functions, which the replicating role alone may call.
        sql.push(role(&keeper_role(&self.app), "NOLOGIN"));
        sql.push(format!(
            "COMMENT ON ROLE {keeper} IS {};",
            quote_literal("cd2-aws: keeps the readers' views through DAP's type changes; never logs in")
        ));
        sql.push(format!("GRANT {app} TO {keeper};"));
        for reader in self.readers.iter().chain(&former) {
            sql.push(format!("GRANT {} TO {keeper};", quote_ident(reader)));
        }
        sql.push(format!("GRANT {keeper} TO CURRENT_USER;"));
        sql.push(format!("CREATE SCHEMA IF NOT EXISTS {keeper} AUTHORIZATION {keeper};"));
        sql.push(format!("REVOKE ALL ON SCHEMA {keeper} FROM PUBLIC;"));
        sql.push(format!("GRANT USAGE ON SCHEMA {keeper} TO {app};"));
        sql.push(format!("SET ROLE {keeper};\n{}\nRESET ROLE;", keeper_sql(&keeper_role(&self.app), true)));
        for function in ["set_aside_views(regclass)", "put_back_views(regclass)"] {
            sql.push(format!("REVOKE ALL ON FUNCTION {keeper}.{function} FROM PUBLIC;"));
            sql.push(format!("GRANT EXECUTE ON FUNCTION {keeper}.{function} TO {app};"));
        }
        sql.push(format!("REVOKE ALL ON FUNCTION {keeper}.views_put_back_check() FROM PUBLIC;"));
        Ok(sql.join("\n"))
    }
}

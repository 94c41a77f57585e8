//! A column type change on a table too big to rewrite inside one call.
//!
//! `ALTER COLUMN ... TYPE` rewrites the whole table in one statement: on a large table it
//! outlasts any call's budget, is cancelled, and would be tried again (and cancelled) on
//! every later call, for ever. Above [`RetypeSettings::in_place_max_bytes`] the change is
//! made resumable instead:
//!
//! 1. [`plan`]: a shadow column of the new type is added and recorded in `cd2_aws.retype`,
//!    in the transaction of the migration's other changes;
//! 2. [`Replicator::finish_retypes`]: it is filled in key order, a batch per transaction,
//!    each recording the last key it converted, so that any later call resumes there;
//! 3. when it is full, one transaction drops the old column (saving and recreating the
//!    users' views and the indexes on it, as the in-place change would) and gives the
//!    shadow the column's name.
//!
//! Until then the table is not synced: its rows stay as they were last loaded (DAP's next
//! changes may not fit the old type), and each call reports the rows it converted, so the
//! workflow counts it as progress. A conversion that fails (a value the new type cannot
//! take) fails the table with PostgreSQL's message, as the in-place change would.

use crate::error::{DbContext, ReplicaError};
use crate::model::{Column, TableModel, quote_ident, quote_literal};
use crate::{Budget, Progress, Replicator, TableRef, ddl, views};
use sqlx::postgres::PgConnection;

/// When a type change is made in place and how a resumable one proceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetypeSettings {
    /// Tables (with their indexes and TOAST) up to this size change a column's type in one
    /// `ALTER`; larger ones through a shadow column filled in batches.
    pub in_place_max_bytes: i64,
    /// Rows converted per batch (one transaction each).
    pub batch_rows: i64,
}

impl Default for RetypeSettings {
    /// 1 GiB rewrites in well under a minute on the smallest Aurora capacity; a batch of
    /// 50,000 rows takes a second or two.
    fn default() -> Self {
        Self { in_place_max_bytes: 1 << 30, batch_rows: 50_000 }
    }
}

/// A resumable type change under way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) column: String,
    pub(crate) shadow: String,
    /// The new type, as DDL.
    pub(crate) target: String,
    /// The last primary key converted, as text (`None`: none yet).
    last_key: Option<String>,
}

/// The table's type changes under way. A record whose shadow column is gone (the table
/// was initialized again, or someone dropped the column) is forgotten here: it would make
/// every later sync fail.
pub(crate) async fn pending(db: &mut PgConnection, table: &TableRef) -> Result<Vec<Pending>, ReplicaError> {
    let name = table.to_string();
    sqlx::query(
        r#"DELETE FROM "cd2_aws"."retype" r WHERE r."namespace" = $1 AND r."table" = $2 AND NOT EXISTS (
             SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
             AND a.attname = r."shadow" AND NOT a.attisdropped)"#,
    )
    .bind(&table.namespace)
    .bind(&table.table)
    .execute(&mut *db)
    .await
    .doing(&name, "forgetting type changes whose shadow column is gone")?;
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        r#"SELECT "column", "shadow", "target_type", "last_key" FROM "cd2_aws"."retype"
           WHERE "namespace" = $1 AND "table" = $2 ORDER BY "column""#,
    )
    .bind(&table.namespace)
    .bind(&table.table)
    .fetch_all(db)
    .await
    .doing(&name, "reading the type changes under way")?;
    Ok(rows
        .into_iter()
        .map(|(column, shadow, target, last_key)| Pending { column, shadow, target, last_key })
        .collect())
}

/// Forgets every change under way on the table: an init replaces the table whole.
pub(crate) async fn forget_table(tx: &mut PgConnection, table: &TableRef) -> Result<(), ReplicaError> {
    on_table(tx, table, r#"DELETE FROM "cd2_aws"."retype""#, "forgetting type changes of the table it replaces").await
}

/// Starts the table's changes under way over from the first key: the primary key's type
/// changed, and with it the order the recorded last key was taken in (as text, `10` comes
/// before `9`). Converting a row again is harmless.
pub(crate) async fn restart(tx: &mut PgConnection, table: &TableRef) -> Result<(), ReplicaError> {
    let sql = r#"UPDATE "cd2_aws"."retype" SET "last_key" = NULL"#;
    on_table(tx, table, sql, "restarting type changes after a key type change").await
}

/// `statement` (an UPDATE or DELETE of `cd2_aws.retype`) on the table's records.
async fn on_table(
    tx: &mut PgConnection,
    table: &TableRef,
    statement: &'static str,
    doing: &str,
) -> Result<(), ReplicaError> {
    let sql = format!(r#"{statement} WHERE "namespace" = $1 AND "table" = $2"#);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&table.namespace)
        .bind(&table.table)
        .execute(tx)
        .await
        .doing(&table.to_string(), doing)?;
    Ok(())
}

/// Views that use the shadow column: a view made while the change was under way (with
/// `SELECT *`, or naming the column). They stop both the swap (their definition names the
/// shadow, which is renamed) and the abandon (they block the column's drop), so the change
/// fails with their names instead.
const SHADOW_DEPENDENTS: &str = "
SELECT DISTINCT format('%I.%I', n.nspname, c.relname)
FROM pg_attribute a
JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum
  AND d.classid = 'pg_rewrite'::regclass
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attname = $3 AND c.oid <> a.attrelid
ORDER BY 1";

async fn check_no_dependents(
    tx: &mut PgConnection,
    model: &TableModel,
    schema: &str,
    p: &Pending,
) -> Result<(), ReplicaError> {
    let table = model.table_ref().to_string();
    let views: Vec<String> = sqlx::query_scalar(SHADOW_DEPENDENTS)
        .bind(schema)
        .bind(&model.name)
        .bind(&p.shadow)
        .fetch_all(tx)
        .await
        .doing(&table, "looking for views on a shadow column")?;
    if views.is_empty() {
        return Ok(());
    }
    Err(ReplicaError::RetypeBlocked {
        table,
        column: p.column.clone(),
        shadow: p.shadow.clone(),
        views: views.join(", "),
    })
}

/// The table's size with its indexes and TOAST: what an in-place type change rewrites.
pub(crate) async fn table_bytes(db: &mut PgConnection, schema: &str, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_total_relation_size(format('%I.%I', $1::text, $2::text)::regclass)")
        .bind(schema)
        .bind(table)
        .fetch_one(db)
        .await
}

/// The shadow column's name: the column's position, which is unique in the table and
/// leaves the name short whatever the column's own name.
async fn shadow_name(db: &mut PgConnection, schema: &str, table: &str, column: &str) -> Result<String, sqlx::Error> {
    let attnum: i16 = sqlx::query_scalar(
        "SELECT attnum FROM pg_attribute WHERE attrelid = format('%I.%I', $1::text, $2::text)::regclass AND attname = $3",
    )
    .bind(schema)
    .bind(table)
    .bind(column)
    .fetch_one(db)
    .await?;
    Ok(format!("cd2_aws_new_{attnum}"))
}

/// Starts a resumable change of `column` to its type in `model`: adds the shadow column
/// and records it. Runs in the migration's transaction.
pub(crate) async fn plan(
    tx: &mut PgConnection,
    model: &TableModel,
    schema: &str,
    column: &Column,
) -> Result<(), ReplicaError> {
    let table = model.table_ref().to_string();
    let shadow =
        shadow_name(&mut *tx, schema, &model.name, &column.name).await.doing(&table, "naming a shadow column")?;
    let qualified = ddl::qualified(schema, &model.name);
    let target = column.sql_type.ddl();
    let comment =
        format!("cd2-aws: `{}` converted to {target}, in batches; it takes this column's place when full", column.name);
    crate::batch(&format!(
        "ALTER TABLE {qualified} ADD COLUMN {s} {target}; COMMENT ON COLUMN {qualified}.{s} IS {c};",
        s = quote_ident(&shadow),
        c = quote_literal(&comment)
    ))
    .execute(&mut *tx)
    .await
    .doing(&table, "adding a shadow column for a type change")?;
    sqlx::query(
        r#"INSERT INTO "cd2_aws"."retype" ("namespace", "table", "column", "shadow", "target_type") VALUES ($1, $2, $3, $4, $5)"#,
    )
    .bind(&model.namespace)
    .bind(&model.name)
    .bind(&column.name)
    .bind(&shadow)
    .bind(&target)
    .execute(&mut *tx)
    .await
    .doing(&table, "recording a type change")?;
    Ok(())
}

/// Gives up a change that is no longer wanted (DAP changed the type again, or dropped the
/// column): the shadow column goes, the column stays as it is.
pub(crate) async fn abandon(
    tx: &mut PgConnection,
    model: &TableModel,
    schema: &str,
    p: &Pending,
) -> Result<(), ReplicaError> {
    let table = model.table_ref().to_string();
    check_no_dependents(&mut *tx, model, schema, p).await?;
    crate::batch(&format!(
        "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
        ddl::qualified(schema, &model.name),
        quote_ident(&p.shadow)
    ))
    .execute(&mut *tx)
    .await
    .doing(&table, "dropping an abandoned shadow column")?;
    forget(tx, model, &p.column).await
}

async fn forget(tx: &mut PgConnection, model: &TableModel, column: &str) -> Result<(), ReplicaError> {
    sqlx::query(r#"DELETE FROM "cd2_aws"."retype" WHERE "namespace" = $1 AND "table" = $2 AND "column" = $3"#)
        .bind(&model.namespace)
        .bind(&model.name)
        .bind(column)
        .execute(&mut *tx)
        .await
        .doing(&model.table_ref().to_string(), "forgetting a type change")?;
    Ok(())
}

/// User indexes that use `column` (the primary key is never changed this way): dropped
/// with the old column, recreated on the new one by the same statement.
const COLUMN_INDEXES: &str = "
SELECT pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = d.refobjsubid
WHERE i.indrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attname = $3 AND NOT i.indisprimary
GROUP BY i.indexrelid ORDER BY i.indexrelid";

/// Privileges granted on the column itself (readers given some columns only): they go
/// with the old column and are granted again on the new one. The grantee comes quoted.
const COLUMN_GRANTS: &str = "
SELECT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
       g.privilege_type, g.is_grantable
FROM pg_attribute a, aclexplode(a.attacl) g
WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attname = $3 AND a.attacl IS NOT NULL
ORDER BY 1, 2";

/// One batch: the next `limit` keys after `p.last_key`, converted; answers the last key
/// of the batch (none: nothing left) and the rows converted.
fn convert_sql(qualified: &str, key: &str, key_type: &str, p: &Pending, target: &str, limit: i64) -> String {
    let key = quote_ident(key);
    let after = match p.last_key {
        Some(_) => format!("WHERE {key} > CAST($1 AS {key_type})"),
        None => String::new(),
    };
    format!(
        r#"WITH "batch" AS (SELECT {key} FROM {qualified} {after} ORDER BY {key} LIMIT {limit}),
           "done" AS (UPDATE {qualified} AS t SET {shadow} = t.{column}::{target}
                      FROM "batch" WHERE t.{key} = "batch".{key} RETURNING 1)
           SELECT (SELECT max({key})::text FROM "batch"), (SELECT count(*) FROM "done")"#,
        shadow = quote_ident(&p.shadow),
        column = quote_ident(&p.column),
    )
}

impl Replicator {
    /// Carries on the table's resumable type changes; answers whether none is left (the
    /// table may be synced) or the budget ran out first (call again).
    pub(crate) async fn finish_retypes(
        &mut self,
        model: &TableModel,
        schema: &str,
        budget: Budget,
        notes: &mut Vec<String>,
    ) -> Result<bool, ReplicaError> {
        let name = model.table_ref().to_string();
        let qualified = ddl::qualified(schema, &model.name);
        let key_type = model.column(&model.primary_key).map(|c| c.sql_type.ddl()).unwrap_or_else(|| "bigint".into());
        let mut first = true;
        for mut p in pending(&mut self.db, &model.table_ref()).await? {
            let Some(target) = model.column(&p.column).map(|c| c.sql_type.ddl()) else {
                continue; // migrate abandons a change whose column left the schema
            };
            loop {
                // The first batch of a call always runs (the call's own progress); later
                // ones while the budget lasts.
                if !first && budget.spent() {
                    return Ok(false);
                }
                let fresh = std::mem::replace(&mut first, false);
                let sql = convert_sql(&qualified, &model.primary_key, &key_type, &p, &target, self.retype.batch_rows);
                let mut tx = self.begin(&name, budget).await?;
                let mut q = sqlx::query_as::<_, (Option<String>, i64)>(sqlx::AssertSqlSafe(sql)).persistent(false);
                if let Some(k) = &p.last_key {
                    q = q.bind(k);
                }
                let (last, rows) = match q.fetch_one(&mut *tx).await.doing(&name, "converting a column's rows") {
                    Ok(done) => done,
                    Err(e) if budget.ran_out(&e) => return Ok(false),
                    Err(e) => return Err(e),
                };
                let Some(last) = last else {
                    tx.rollback().await.doing(&name, "ending the conversion")?;
                    // A swap that had the whole call and still ran out never will.
                    match self.swap(model, schema, &p, budget, fresh).await {
                        Ok(left_empty) => notes.extend(left_empty),
                        Err(e) if budget.ran_out(&e) => return Ok(false),
                        Err(e) => return Err(e),
                    }
                    self.report(&Progress::Swapped { table: &name, column: &p.column });
                    notes.push(format!(
                        "column `{}`: now {} (converted in batches; it is now the table's last column)",
                        p.column, target
                    ));
                    break;
                };
                sqlx::query(
                    r#"UPDATE "cd2_aws"."retype" SET "last_key" = $4 WHERE "namespace" = $1 AND "table" = $2 AND "column" = $3"#,
                )
                .bind(&model.namespace)
                .bind(&model.name)
                .bind(&p.column)
                .bind(&last)
                .execute(&mut *tx)
                .await
                .doing(&name, "recording a conversion's progress")?;
                tx.commit().await.doing(&name, "committing a conversion batch")?;
                p.last_key = Some(last);
                self.report(&Progress::Converted { table: &name, column: &p.column, rows: rows as u64 });
            }
        }
        Ok(true)
    }

    /// The old column out, the full shadow in its place, in one transaction with the
    /// users' views and the column's indexes saved and recreated; the materialized views
    /// left empty, each as a line.
    async fn swap(
        &mut self,
        model: &TableModel,
        schema: &str,
        p: &Pending,
        budget: Budget,
        fresh: bool,
    ) -> Result<Vec<String>, ReplicaError> {
        let name = model.table_ref().to_string();
        let qualified = ddl::qualified(schema, &model.name);
        let mut tx = self.begin(&name, budget).await?;
        crate::batch(ddl::DDL_LOCK).execute(&mut *tx).await.doing(&name, "waiting for other schema changes")?;
        check_no_dependents(&mut tx, model, schema, p).await?;
        let indexes: Vec<String> = sqlx::query_scalar(COLUMN_INDEXES)
            .bind(schema)
            .bind(&model.name)
            .bind(&p.column)
            .fetch_all(&mut *tx)
            .await
            .doing(&name, "reading the column's indexes")?;
        let grants: Vec<(String, String, bool)> = sqlx::query_as(COLUMN_GRANTS)
            .bind(schema)
            .bind(&model.name)
            .bind(&p.column)
            .fetch_all(&mut *tx)
            .await
            .doing(&name, "reading the column's grants")?;
        let set_aside =
            views::set_aside(&mut tx, schema, &model.name).await.doing(&name, "setting dependent views aside")?;
        let column = quote_ident(&p.column);
        let mut sql = format!(
            "ALTER TABLE {qualified} DROP COLUMN {column}; ALTER TABLE {qualified} RENAME COLUMN {} TO {column};\n",
            quote_ident(&p.shadow)
        );
        if model.column(&p.column).is_some_and(|c| c.not_null) {
            // One scan, under the lock the swap holds anyway; the rewrite in place would
            // have read every row too.
            sql.push_str(&format!("ALTER TABLE {qualified} ALTER COLUMN {column} SET NOT NULL;\n"));
        }
        for (grantee, privilege, grantable) in &grants {
            let option = if *grantable { " WITH GRANT OPTION" } else { "" };
            sql.push_str(&format!("GRANT {privilege} ({column}) ON {qualified} TO {grantee}{option};\n"));
        }
        let comment = model.column(&p.column).and_then(|c| c.comment.as_deref());
        sql.push_str(&format!(
            "COMMENT ON COLUMN {qualified}.{column} IS {};\n",
            comment.map_or_else(|| "NULL".to_owned(), quote_literal)
        ));
        for index in &indexes {
            sql.push_str(index);
            sql.push_str(";\n");
        }
        let too_slow = |e: ReplicaError| {
            if fresh && budget.ran_out(&e) {
                ReplicaError::RetypeTooSlow {
                    table: name.clone(),
                    column: p.column.clone(),
                    shadow: p.shadow.clone(),
                    indexes: indexes.len(),
                    views: set_aside,
                }
            } else {
                e
            }
        };
        budget.limit(&mut tx, &name).await?;
        crate::batch(&sql)
            .execute(&mut *tx)
            .await
            .doing(&name, "putting the converted column in place")
            .map_err(too_slow)?;
        budget.limit(&mut tx, &name).await?;
        let left_empty = views::put_back(&mut tx, schema, &model.name)
            .await
            .doing(&name, "recreating dependent views")
            .map_err(too_slow)?;
        forget(&mut tx, model, &p.column).await?;
        tx.commit().await.doing(&name, "committing a type change")?;
        Ok(left_empty)
    }
}

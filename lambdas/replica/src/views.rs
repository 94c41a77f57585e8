//! Users' views and materialized views over a replicated table, kept through an `ALTER`
//! they would block: set aside (saved, then dropped) before it and put back after it, in
//! the same transaction, with their owner, options, grants (table and column), comments,
//! indexes (materialized views), INSTEAD OF triggers and rules.
//!
//! The work is done by the views keeper, two SQL functions (`views_keeper.sql`). The
//! bootstrap installs them as the keeper role, which holds the readers' privileges, so that
//! the replicating role keeps a reader's views in the reader's schema without holding those
//! privileges itself: the functions recreate only what they saved, from the catalog. Where
//! no keeper is installed, the same functions are made in `pg_temp` and run as the caller.

use crate::ddl::qualified;
use crate::model::quote_ident;
use sqlx::postgres::PgConnection;

const KEEPER_SQL: &str = include_str!("views_keeper.sql");

/// The settings pinned on both keeper functions (`@pinned@`): those that shape a view's
/// definition as `pg_get_viewdef` writes it and `CREATE VIEW` reads it back, and where a
/// recreated relation goes, so the text saved is the text replayed whatever the session.
const PINNED: &str = "SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on SET DateStyle = 'ISO'
SET IntervalStyle = 'postgres' SET extra_float_digits = 3 SET default_tablespace = ''
SET default_table_access_method = 'heap'";

/// The keeper's table and functions in `schema`, running as their owner when `definer`.
pub fn keeper_sql(schema: &str, definer: bool) -> String {
    KEEPER_SQL
        .replace("@schema@", &quote_ident(schema))
        .replace("@pinned@", PINNED)
        .replace("@definer@", if definer { "SECURITY DEFINER" } else { "SECURITY INVOKER" })
}

/// The keeper's role and schema for the replicating role `app`.
pub fn keeper_role(app: &str) -> String {
    format!("{app}_keeper")
}

/// The keeper's schema for this session's role (the bootstrap's, owned by the keeper
/// role), or else its twin in `pg_temp`, made now if this session has none yet.
async fn keeper(db: &mut PgConnection) -> Result<String, sqlx::Error> {
    let installed: Option<String> = sqlx::query_scalar(
        "SELECT quote_ident(n.nspname) FROM pg_catalog.pg_namespace n
         WHERE n.nspname = session_user || '_keeper' AND pg_get_userbyid(n.nspowner) = n.nspname
           AND has_function_privilege(to_regprocedure(quote_ident(n.nspname) || '.set_aside_views(regclass)'), 'EXECUTE')",
    )
    .fetch_optional(&mut *db)
    .await?;
    if let Some(schema) = installed {
        return Ok(schema);
    }
    let made: bool = sqlx::query_scalar("SELECT to_regprocedure('pg_temp.put_back_views(regclass)') IS NOT NULL")
        .fetch_one(&mut *db)
        .await?;
    if !made {
        crate::batch(&keeper_sql("pg_temp", false)).execute(&mut *db).await?;
    }
    Ok("pg_temp".to_owned())
}

/// Saves and drops the views that depend on the table, directly or through other views;
/// returns how many. A view the keeper may not keep (another role's) fails the call with
/// its name and what to do, before anything is dropped.
pub async fn set_aside(db: &mut PgConnection, schema: &str, table: &str) -> Result<usize, sqlx::Error> {
    let keeper = keeper(db).await?;
    let n: i32 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {keeper}.set_aside_views($1::text::regclass)")))
            .bind(qualified(schema, table))
            .fetch_one(&mut *db)
            .await?;
    Ok(usize::try_from(n).unwrap_or_default())
}

/// Recreates what [`set_aside`] saved, as it was, in the same transaction. A view's query
/// never runs with the keeper's or the replicator's privileges: a plain view's query does
/// not run when it is made, and a materialized view is made empty, given to its owner and
/// filled (if it was) by a `REFRESH`, which runs as the owner. Returns a line for each
/// materialized view left empty because filling it failed.
pub async fn put_back(db: &mut PgConnection, schema: &str, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let keeper = keeper(db).await?;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {keeper}.put_back_views($1::text::regclass)")))
        .bind(qualified(schema, table))
        .fetch_one(&mut *db)
        .await
}

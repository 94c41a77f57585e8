//! Plain connections to the test or bench PostgreSQL, for the commands that set it up.

use anyhow::{Context, Result};
use sqlx::{Connection as _, PgConnection};

pub async fn connect(url: &str) -> Result<PgConnection> {
    // The URL may hold a password: name only where it points.
    let target = url.rsplit('@').next().unwrap_or(url);
    PgConnection::connect(url).await.with_context(|| format!("connecting to the database at {target}"))
}

/// A new, empty database `name` on `server` (dropped first if it exists); returns its URL.
pub async fn create_database(server: &str, name: &str) -> Result<String> {
    let mut admin = connect(&format!("{server}/postgres")).await?;
    let name = replica::model::quote_ident(name);
    for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await?;
    }
    Ok(format!("{server}/{}", name.trim_matches('"')))
}

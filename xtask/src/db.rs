//! Plain connections to the test or bench PostgreSQL, for the commands that set it up.

use anyhow::{Context, Result};
use tokio_postgres::NoTls;

pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// A new, empty database `name` on `server` (dropped first if it exists); returns its URL.
pub async fn create_database(server: &str, name: &str) -> Result<String> {
    let admin = connect(&format!("{server}/postgres")).await?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    Ok(format!("{server}/{name}"))
}

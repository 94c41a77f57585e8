//! One DAP object into one `COPY`: HTTP body -> gunzip -> lines -> COPY text, in bounded
//! memory (a line and a 256 KiB send buffer), inside the caller's transaction.

use crate::Counts;
use crate::error::{DbContext, ReplicaError};
use crate::model::{TableModel, quote_ident};
use crate::tsv::Layout;
use bytes::Bytes;
use dap::{DapClient, ObjectId};
use futures_util::SinkExt;
use tokio::io::AsyncBufReadExt;
use tokio_postgres::Transaction;

const SEND_AT: usize = 256 * 1024;

/// The incoming table's own columns, named so that no DAP column can clash with them.
const ACTION: &str = "cd2_aws$action";
const ORDER: &str = "cd2_aws$ord";

/// What one object held.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub rows: u64,
}

/// Streams `object` into `COPY <target> (<columns>) FROM STDIN`. `target(layout)` names
/// the table and any leading columns (the action, for incremental results).
pub async fn copy_object(
    tx: &Transaction<'_>,
    dap: &DapClient,
    model: &TableModel,
    object: &ObjectId,
    with_action: bool,
    target: &str,
) -> Result<(Loaded, Option<Layout>), ReplicaError> {
    let table = format!("{}.{}", model.namespace, model.name);
    let mut reader = dap.open_object(object).await?;
    let read_error = |e: std::io::Error| {
        ReplicaError::Dap(dap::DapError::Download {
            object: object.id.clone(),
            detail: format!("reading the gzip stream: {e}"),
        })
    };
    let mut line = Vec::with_capacity(4096);
    if reader.read_until(b'\n', &mut line).await.map_err(read_error)? == 0 {
        // An empty object: no header, no rows.
        return Ok((Loaded::default(), None));
    }
    let header = String::from_utf8_lossy(&line).into_owned();
    let layout = Layout::from_header(&header, model, with_action).map_err(|message| ReplicaError::Data {
        table: table.clone(),
        object: object.id.clone(),
        line: 1,
        message,
    })?;
    let mut columns: Vec<String> = Vec::new();
    if layout.has_action {
        columns.push(quote_ident(ACTION));
    }
    columns.extend(layout.columns.iter().map(|c| quote_ident(c)));
    let sql = format!("COPY {target} ({}) FROM STDIN", columns.join(", "));
    let sink = tx.copy_in::<_, Bytes>(&sql).await.doing(&table, "starting COPY")?;
    futures_util::pin_mut!(sink);

    // Decoding and converting run in their own task, a few chunks ahead of the COPY, so
    // this process and the database work at the same time; the channel bounds memory.
    let (chunks, mut received) = tokio::sync::mpsc::channel::<Result<Bytes, ReplicaError>>(4);
    let producer = {
        let (layout, table, object) = (layout.clone(), table.clone(), object.id.clone());
        tokio::spawn(async move {
            let result = convert(&mut reader, &layout, &table, &object, &chunks).await;
            if let Err(e) = result {
                let _ = chunks.send(Err(e)).await;
            }
        })
    };
    while let Some(chunk) = received.recv().await {
        sink.send(chunk?).await.map_err(|e| copy_error(&table, &object.id, e))?;
    }
    producer.await.map_err(|e| ReplicaError::Data {
        table: table.clone(),
        object: object.id.clone(),
        line: 0,
        message: format!("the converting task failed: {e}"),
    })?;
    let rows = sink.finish().await.map_err(|e| copy_error(&table, &object.id, e))?;
    Ok((Loaded { rows }, Some(layout)))
}

/// Reads the lines after the header and sends their COPY text in chunks.
async fn convert(
    reader: &mut dap::ObjectReader,
    layout: &Layout,
    table: &str,
    object: &str,
    chunks: &tokio::sync::mpsc::Sender<Result<Bytes, ReplicaError>>,
) -> Result<(), ReplicaError> {
    let read_error = |e: std::io::Error| {
        ReplicaError::Dap(dap::DapError::Download {
            object: object.into(),
            detail: format!("reading the gzip stream: {e}"),
        })
    };
    let mut line = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(SEND_AT + 4096);
    let mut number: u64 = 1;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await.map_err(read_error)? == 0 {
            break;
        }
        number += 1;
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        if content.is_empty() {
            // The official reader stops at the first empty line too.
            break;
        }
        layout.transform(content, &mut out).map_err(|e| ReplicaError::Data {
            table: table.into(),
            object: object.into(),
            line: number,
            message: format!("the line {e}"),
        })?;
        if out.len() >= SEND_AT {
            let chunk = Bytes::from(std::mem::replace(&mut out, Vec::with_capacity(SEND_AT + 4096)));
            if chunks.send(Ok(chunk)).await.is_err() {
                // The COPY side stopped; it reports why.
                return Ok(());
            }
        }
    }
    if !out.is_empty() {
        let _ = chunks.send(Ok(Bytes::from(out))).await;
    }
    Ok(())
}

/// A COPY the server refused: bad values, with the line PostgreSQL names.
fn copy_error(table: &str, object: &str, e: tokio_postgres::Error) -> ReplicaError {
    let message = crate::error::describe(&e);
    // "COPY x, line N, column c: ..." counts lines without the header.
    let line = message
        .split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |n| n + 1);
    ReplicaError::Data { table: table.into(), object: object.into(), line, message }
}

/// One object through a temporary table: upserts (`U`, or every row for a snapshot of a
/// table that repeats keys), then deletes (`D`). The last row of a repeated key wins.
pub async fn upsert_object(
    tx: &tokio_postgres::Transaction<'_>,
    dap: &DapClient,
    model: &TableModel,
    object: &dap::ObjectId,
    target: &str,
    incremental: bool,
) -> Result<Counts, ReplicaError> {
    let name = format!("{}.{}", model.namespace, model.name);
    let (action, order) = (quote_ident(ACTION), quote_ident(ORDER));
    let mut columns = vec![format!("{action} text"), format!("{order} bigserial")];
    columns.extend(model.columns.iter().map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type.ddl())));
    tx.batch_execute(&format!(r#"CREATE TEMPORARY TABLE "cd2_incoming" ({}) ON COMMIT DROP"#, columns.join(", ")))
        .await
        .doing(&name, "creating the incoming table")?;
    let (_, layout) = copy_object(tx, dap, model, object, incremental, r#"pg_temp."cd2_incoming""#).await?;
    let Some(layout) = layout else {
        return Ok(Counts::default());
    };
    let pk = quote_ident(&model.primary_key);
    let cols: Vec<String> = layout.columns.iter().map(|c| quote_ident(c)).collect();
    let list = cols.join(", ");
    let updates: Vec<String> = layout
        .columns
        .iter()
        .filter(|c| **c != model.primary_key)
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
        .collect();
    let on_conflict = if updates.is_empty() {
        format!("ON CONFLICT ({pk}) DO NOTHING")
    } else {
        format!("ON CONFLICT ({pk}) DO UPDATE SET {}", updates.join(", "))
    };
    // The last row of each key decides, whether it is an upsert or a delete.
    let latest = format!(r#"SELECT DISTINCT ON ({pk}) * FROM pg_temp."cd2_incoming" ORDER BY {pk}, {order} DESC"#);
    let upserts = if incremental { format!("{action} = 'U'") } else { "true".to_owned() };
    let upsert = format!(
        r#"WITH changed AS (
             INSERT INTO {target} ({list})
             SELECT {list} FROM ({latest}) latest WHERE {upserts}
             {on_conflict}
             RETURNING (xmax = 0) AS inserted)
           SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM changed"#
    );
    let row = tx.query_one(&upsert, &[]).await.doing(&name, "applying upserts")?;
    let mut counts = Counts { inserted: row.get::<_, i64>(0) as u64, updated: row.get::<_, i64>(1) as u64, deleted: 0 };
    if incremental {
        let delete = format!(
            r#"DELETE FROM {target} t USING ({latest}) latest WHERE latest.{action} = 'D' AND t.{pk} = latest.{pk}"#
        );
        counts.deleted = tx.execute(&delete, &[]).await.doing(&name, "applying deletes")?;
    }
    Ok(counts)
}

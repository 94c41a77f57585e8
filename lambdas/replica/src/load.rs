//! One DAP object into one `COPY`: HTTP body -> gunzip -> lines -> COPY text, in bounded
//! memory (a line of at most [`MAX_LINE`] and a few 256 KiB chunks), inside the caller's
//! transaction, within the caller's time budget.

use crate::archive::{ArchiveReader, JobArchive};
use crate::error::{DbContext, ReplicaError};
use crate::model::{TableModel, quote_ident};
use crate::tsv::Layout;
use crate::{Budget, Counts};
use bytes::Bytes;
use dap::{DapClient, ObjectId};
use sqlx::postgres::PgConnection;
use tokio::io::AsyncBufReadExt;

/// COPY data goes to the server in sends of this size (sqlx flushes each one).
const SEND_AT: usize = 256 * 1024;

/// The longest line read: past it, an object is refused rather than held in memory.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// The incoming table's own columns, named so that no DAP column can clash with them.
const ACTION: &str = "cd2_aws$action";
const ORDER: &str = "cd2_aws$ord";

/// What one object held.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub rows: u64,
}

/// Reads one line, newline included, into `line` (cleared first); 0 at the end. A line
/// longer than `max` is an error, so a stream without newlines cannot grow memory.
async fn read_line(reader: &mut dap::ObjectReader, line: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
    line.clear();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(line.len());
        }
        let (used, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + used > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a line is longer than {max} bytes without a newline"),
            ));
        }
        line.extend_from_slice(&buf[..used]);
        reader.consume(used);
        if done {
            return Ok(line.len());
        }
    }
}

/// What went wrong reading an object: too long a line is bad data; anything else is the
/// download failing (retried with a fresh URL).
fn read_error(table: &str, object: &str, line: u64, e: std::io::Error) -> ReplicaError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        ReplicaError::Data { table: table.into(), object: object.into(), line, message: e.to_string() }
    } else {
        ReplicaError::Dap(dap::DapError::Download {
            object: object.into(),
            detail: format!("reading the gzip stream: {e}"),
        })
    }
}

/// The converting task: aborted when the load ends early (an error, or the budget spent).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task; a panic in it must fail the object, not end it early as if
    /// every line had been read.
    async fn finished(&mut self) -> Result<(), tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where objects come from: DAP, or the archive when a table is restored from it.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Dap(&'a DapClient),
    Archive(&'a dyn ArchiveReader),
}

impl Source<'_> {
    /// Opens `object` for reading, its bytes also sent to `tee` (DAP only: a restore
    /// writes nothing to the archive).
    async fn open(
        &self,
        table: &str,
        object: &ObjectId,
        tee: Option<dap::Tee>,
    ) -> Result<dap::ObjectReader, ReplicaError> {
        match self {
            Source::Dap(dap) => Ok(dap.open_object_teed(object, tee).await?),
            Source::Archive(reader) => reader.open(&object.id).await.map_err(|e| ReplicaError::ArchiveRead {
                table: table.into(),
                key: object.id.clone(),
                message: e.message,
                transient: e.transient,
            }),
        }
    }
}

/// DAP, or the archive's `reader` when there is one.
pub(crate) fn source<'a>(dap: &'a DapClient, reader: &'a Option<std::sync::Arc<dyn ArchiveReader>>) -> Source<'a> {
    match reader {
        Some(reader) => Source::Archive(reader.as_ref()),
        None => Source::Dap(dap),
    }
}

/// Where an object is loaded from and to.
#[derive(Clone, Copy)]
pub(crate) struct Load<'a> {
    pub(crate) source: Source<'a>,
    pub(crate) model: &'a TableModel,
    /// The qualified table the rows go into.
    pub(crate) target: &'a str,
    /// The job's folder in the raw zone, when objects are archived.
    pub(crate) archive: Option<&'a JobArchive>,
    pub(crate) budget: Budget,
}

/// Streams `object` into `COPY <target> (<columns>) FROM STDIN`, the action first when
/// `with_action` (incremental results), and into the archive when there is one. The copy
/// is kept only once the caller's statements have taken the object too
/// ([`Copied::keep`]). When the budget runs out before the object is in, the COPY is
/// ended early and the caller gets [`ReplicaError::OutOfTime`] (and rolls back).
pub(crate) async fn copy_object(
    db: &mut PgConnection,
    load: &Load<'_>,
    object: &ObjectId,
    with_action: bool,
) -> Result<Copied, ReplicaError> {
    let table = load.model.table_ref().to_string();
    let Some(archive) = load.archive else {
        let (loaded, layout) = copy_teed(db, load, &table, object, with_action, None).await?;
        return Ok(Copied { loaded, layout, upload: None });
    };
    let (tee, upload) = archive.start(object);
    // On an error the upload is dropped unfinished, and the copy given up with it.
    let (loaded, layout) = copy_teed(db, load, &table, object, with_action, Some(tee)).await?;
    Ok(Copied { loaded, layout, upload: Some(upload) })
}

/// An object in COPY's target, its archive copy still open: dropped (the caller's later
/// statements failed), the copy is given up.
pub(crate) struct Copied {
    pub(crate) loaded: Loaded,
    pub(crate) layout: Option<Layout>,
    upload: Option<crate::archive::Upload>,
}

impl Copied {
    /// The object is in: its archive copy is ended and stored, within the budget.
    pub(crate) async fn keep(
        self,
        load: &Load<'_>,
        object: &ObjectId,
    ) -> Result<(Loaded, Option<Layout>), ReplicaError> {
        if let (Some(upload), Some(archive)) = (self.upload, load.archive) {
            upload.finished(&load.model.table_ref().to_string(), &object.id, load.budget).await?;
            archive.stored(self.layout.as_ref().map(|l| l.header.as_slice()));
        }
        Ok((self.loaded, self.layout))
    }
}

/// Downloads `object` into the archive alone (it is in the database already), reading it
/// whole so that only a good download is kept.
pub(crate) async fn archive_object(
    load: &Load<'_>,
    archive: &JobArchive,
    object: &ObjectId,
) -> Result<(), ReplicaError> {
    let table = load.model.table_ref().to_string();
    let (tee, upload) = archive.start(object);
    let read = load
        .budget
        .within(async {
            let mut reader = load.source.open(&table, object, Some(tee)).await?;
            tokio::io::copy(&mut reader, &mut tokio::io::sink()).await.map_err(|e| read_error(&table, &object.id, 0, e))
        })
        .await;
    read.ok_or_else(|| ReplicaError::OutOfTime { table: table.clone(), object: object.id.clone() })??;
    upload.finished(&table, &object.id, load.budget).await
}

async fn copy_teed(
    db: &mut PgConnection,
    load: &Load<'_>,
    table: &str,
    object: &ObjectId,
    with_action: bool,
    tee: Option<dap::Tee>,
) -> Result<(Loaded, Option<Layout>), ReplicaError> {
    let Load { source, model, target, budget, .. } = *load;
    let out_of_time = || ReplicaError::OutOfTime { table: table.into(), object: object.id.clone() };
    let mut line = Vec::with_capacity(4096);
    let opened = budget
        .within(async {
            let mut reader = source.open(table, object, tee).await?;
            let n =
                read_line(&mut reader, &mut line, MAX_LINE).await.map_err(|e| read_error(table, &object.id, 1, e))?;
            Ok::<_, ReplicaError>((reader, n))
        })
        .await;
    let (mut reader, n) = opened.ok_or_else(out_of_time)??;
    if n == 0 {
        // An empty object: no header, no rows.
        return Ok((Loaded::default(), None));
    }
    let header = String::from_utf8_lossy(&line).into_owned();
    let layout = Layout::from_header(&header, model, with_action).map_err(|message| ReplicaError::Data {
        table: table.into(),
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

    // Decoding and converting run in their own task, a few chunks ahead of the COPY, so
    // this process and the database work at the same time; the channel bounds memory.
    let (chunks, mut received) = tokio::sync::mpsc::channel::<Result<Bytes, ReplicaError>>(4);
    let mut producer = {
        let (layout, table, object) = (layout.clone(), table.to_owned(), object.id.clone());
        AbortOnDrop(tokio::spawn(async move {
            let result = convert(&mut reader, &layout, &table, &object, &chunks).await;
            if let Err(e) = result {
                let _ = chunks.send(Err(e)).await;
            }
        }))
    };
    let mut copy = db.copy_in_raw(&sql).await.doing(table, "starting COPY")?;
    loop {
        // Waiting for the next chunk is where a slow object spends its time, and a big one
        // always has the next chunk ready: the budget is checked both ways.
        let next = if budget.spent() { None } else { budget.within(received.recv()).await };
        let next = match next {
            Some(next) => next,
            None => {
                tracing::info!(table = %table, object = %object.id, "the time budget ran out mid-object; stopping it");
                // The COPY is ended with what it has (whole lines) rather than aborted: sqlx's
                // abort leaves the connection out of step when the server had already
                // refused the data. The caller rolls the transaction back.
                end_early(copy, table).await?;
                return Err(out_of_time());
            }
        };
        match next {
            Some(Ok(chunk)) => {
                if let Err(e) = copy.send(chunk).await {
                    return Err(copy_error(table, &object.id, e));
                }
            }
            Some(Err(e)) => {
                end_early(copy, table).await?;
                return Err(e);
            }
            None => break,
        }
    }
    if let Err(e) = producer.finished().await {
        end_early(copy, table).await?;
        return Err(ReplicaError::Data {
            table: table.into(),
            object: object.id.clone(),
            line: 0,
            message: format!("the converting task failed: {e}"),
        });
    }
    let rows = copy.finish().await.map_err(|e| copy_error(table, &object.id, e))?;
    Ok((Loaded { rows }, Some(layout)))
}

/// Ends a COPY that is given up on, keeping the connection in step: whatever the server
/// answers (rows, or the error it had already met) is read to its end, and only a lost
/// connection is an error. The caller's transaction is then rolled back.
async fn end_early(copy: sqlx::postgres::PgCopyIn<&mut PgConnection>, table: &str) -> Result<(), ReplicaError> {
    match copy.finish().await {
        Err(e) if crate::error::connection_lost(&e) => {
            Err(ReplicaError::Db { table: table.into(), doing: "ending COPY".into(), cause: e })
        }
        _ => Ok(()),
    }
}

/// Reads the lines after the header and sends their COPY text in chunks.
async fn convert(
    reader: &mut dap::ObjectReader,
    layout: &Layout,
    table: &str,
    object: &str,
    chunks: &tokio::sync::mpsc::Sender<Result<Bytes, ReplicaError>>,
) -> Result<(), ReplicaError> {
    let mut line = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(SEND_AT + 4096);
    let mut number: u64 = 1;
    loop {
        number += 1;
        if read_line(reader, &mut line, MAX_LINE).await.map_err(|e| read_error(table, object, number, e))? == 0 {
            break;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        if content.is_empty() {
            // The official reader stops at an empty line; one with data after it is not an end.
            let more = reader.fill_buf().await.map_err(|e| read_error(table, object, number, e))?;
            if more.is_empty() {
                break;
            }
            return Err(ReplicaError::Data {
                table: table.into(),
                object: object.into(),
                line: number,
                message: "the line is empty, and more lines follow it".into(),
            });
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
fn copy_error(table: &str, object: &str, e: sqlx::Error) -> ReplicaError {
    if crate::error::is_transient_db(&e) {
        // A lost connection or a cancelled statement is no fault of the data.
        return ReplicaError::Db { table: table.into(), doing: format!("loading object {object}"), cause: e };
    }
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
pub(crate) async fn upsert_object(
    db: &mut PgConnection,
    load: &Load<'_>,
    object: &dap::ObjectId,
    incremental: bool,
) -> Result<Counts, ReplicaError> {
    let Load { model, target, budget, .. } = *load;
    let name = model.table_ref().to_string();
    let (action, order) = (quote_ident(ACTION), quote_ident(ORDER));
    let mut columns = vec![format!("{action} text"), format!("{order} bigserial")];
    columns.extend(model.columns.iter().map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type.ddl())));
    crate::batch(&format!(r#"CREATE TEMPORARY TABLE "cd2_incoming" ({}) ON COMMIT DROP"#, columns.join(", ")))
        .execute(&mut *db)
        .await
        .doing(&name, "creating the incoming table")?;
    let incoming = Load { target: r#"pg_temp."cd2_incoming""#, ..*load };
    let copied = copy_object(db, &incoming, object, incremental).await?;
    let Some(layout) = copied.layout.clone() else {
        copied.keep(load, object).await?;
        return Ok(Counts::default());
    };
    if budget.spent() {
        return Err(ReplicaError::OutOfTime { table: name, object: object.id.clone() });
    }
    budget.limit(db, &name).await?;
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
    // Statements built per table run unprepared: a cached plan would outlive a type change.
    let (inserted, updated): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(upsert))
        .persistent(false)
        .fetch_one(&mut *db)
        .await
        .doing(&name, "applying upserts")?;
    let mut counts = Counts { inserted: inserted as u64, updated: updated as u64, deleted: 0 };
    if incremental {
        let delete = format!(
            r#"DELETE FROM {target} t USING ({latest}) latest WHERE latest.{action} = 'D' AND t.{pk} = latest.{pk}"#
        );
        counts.deleted =
            crate::batch(&delete).execute(&mut *db).await.doing(&name, "applying deletes")?.rows_affected();
    }
    // The table took the object: only now is its archive copy kept.
    copied.keep(load, object).await?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_up_to_a_bound_and_no_further() {
        let data: &'static [u8] = b"header\n0123456789abcdef0123456789";
        let mut reader: dap::ObjectReader = Box::pin(tokio::io::BufReader::with_capacity(8, data));
        let mut line = Vec::new();
        assert_eq!(read_line(&mut reader, &mut line, 16).await.unwrap(), 7);
        assert_eq!(line, b"header\n");
        let err = read_error("canvas.t", "part-1", 2, read_line(&mut reader, &mut line, 16).await.unwrap_err());
        assert!(matches!(err, ReplicaError::Data { line: 2, .. }), "{err:?}");
        assert!(err.to_string().contains("part-1, line 2: a line is longer than 16 bytes"), "{err}");
        assert!(line.len() <= 16, "memory stays within the bound");
    }
}

//! The archive's Glue database: for each DAP table, kind and schema version, a table over
//! its files (`<namespace>__<table>__<kind>_v<version>`), and one that follows the newest
//! version (`<namespace>__<table>__<kind>`), so that a query written today still runs
//! after a schema change. Athena reads TSV by position, so a table only ever covers files
//! of one version, whose columns are in the order of their header.
//!
//! Days are partitions by projection: Athena computes them from `archive_day` in the
//! query, and nothing needs adding as days pass.

use crate::failed;
use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, TableInput};
use replica::{ArchiveError, CatalogTable};
use std::time::Duration;

/// The partition column: the day (UTC) a job's data is current to, `YYYY-MM-DD`. Not `day`,
/// which a DAP table may have as a column.
pub const DAY: &str = "archive_day";

/// The table parameter that records the schema version a table describes.
const VERSION: &str = "cd2_aws.schema_version";

/// The first day a projection offers: before Canvas Data 2.
const FIRST_DAY: &str = "2020-01-01";

#[derive(Clone, Debug)]
pub struct Catalog {
    glue: aws_sdk_glue::Client,
    database: String,
}

impl Catalog {
    /// The catalog in `database`, through `glue` with timeouts, so that a stalled call
    /// cannot hold a job's transaction open for long.
    pub fn new(glue: aws_sdk_glue::Client, database: String) -> Self {
        let timeouts = aws_sdk_glue::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(20))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let glue = aws_sdk_glue::Client::from_conf(glue.config().to_builder().timeout_config(timeouts).build());
        Self { glue, database }
    }

    /// Makes or brings up to date the version's table and the table of the newest version
    /// (left alone when it already describes a newer one).
    pub(crate) async fn describe(&self, bucket: &str, table: &CatalogTable) -> Result<(), ArchiveError> {
        let versioned = format!("{}_v{}", table.name, table.schema_version);
        for name in [versioned.as_str(), table.name.as_str()] {
            let input = self.input(bucket, table, name)?;
            let found = self.glue.get_table().database_name(&self.database).name(name).send().await;
            let current = match found {
                Ok(found) => found.table,
                Err(e) if e.as_service_error().is_some_and(|e| e.is_entity_not_found_exception()) => None,
                Err(e) => return Err(self.failed("GetTable", e)),
            };
            match current {
                None => {
                    let made = self.glue.create_table().database_name(&self.database).table_input(input).send().await;
                    match made {
                        Ok(_) => tracing::info!(database = %self.database, table = name, "catalog table made"),
                        // Another function made it meanwhile, from the same files.
                        Err(e) if e.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => {}
                        Err(e) => return Err(self.failed("CreateTable", e)),
                    }
                }
                Some(current) => {
                    let version = current.parameters().and_then(|p| p.get(VERSION)).and_then(|v| v.parse::<i64>().ok());
                    let columns: Vec<(String, String)> = current
                        .storage_descriptor()
                        .map(|s| {
                            s.columns()
                                .iter()
                                .map(|c| (c.name().to_owned(), c.r#type().unwrap_or_default().to_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let newer = version.is_some_and(|v| v > table.schema_version);
                    let same = version == Some(table.schema_version) && columns == table.columns;
                    // Columns in the schema's order (no file was read) only stand in until
                    // a header gives the files' own.
                    let unsure = version == Some(table.schema_version) && !table.from_header;
                    if newer || same || unsure {
                        continue;
                    }
                    // Glue would keep every version of the table's definition, up to its quota.
                    let updated = self
                        .glue
                        .update_table()
                        .database_name(&self.database)
                        .table_input(input)
                        .skip_archive(true)
                        .send()
                        .await;
                    updated.map_err(|e| self.failed("UpdateTable", e))?;
                    tracing::info!(database = %self.database, table = name, version = table.schema_version, "catalog table updated");
                }
            }
        }
        Ok(())
    }

    /// Table `name` over `table`'s files in `bucket`: gzip TSV as DAP writes it (a header,
    /// tabs, `\N` for NULL), a partition per day.
    fn input(&self, bucket: &str, table: &CatalogTable, name: &str) -> Result<TableInput, ArchiveError> {
        let column = |name: &str, kind: &str| {
            Column::builder().name(name).r#type(kind).build().map_err(|e| ArchiveError {
                message: format!("the catalog's column {name} of {}: {e}", table.name),
                transient: false,
            })
        };
        let location = format!("s3://{bucket}/{}", table.prefix);
        // No `escape.delim`: Athena's reader would turn COPY's `\t` and `\n` into the letters
        // t and n. Text keeps DAP's escapes as written, which a query decodes (README).
        let serde = SerDeInfo::builder()
            .serialization_library("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe")
            .parameters("field.delim", "\t")
            .parameters("serialization.format", "\t")
            .parameters("serialization.null.format", "\\N")
            .build();
        let mut storage = StorageDescriptor::builder()
            .location(&location)
            .input_format("org.apache.hadoop.mapred.TextInputFormat")
            .output_format("org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat")
            .compressed(true)
            .serde_info(serde);
        for (name, kind) in &table.columns {
            storage = storage.columns(column(name, kind)?);
        }
        let parameters = [
            ("EXTERNAL", "TRUE".to_owned()),
            ("classification", "csv".to_owned()),
            ("compressionType", "gzip".to_owned()),
            ("skip.header.line.count", "1".to_owned()),
            ("projection.enabled", "true".to_owned()),
            (&format!("projection.{DAY}.type"), "date".to_owned()),
            (&format!("projection.{DAY}.format"), "yyyy-MM-dd".to_owned()),
            (&format!("projection.{DAY}.range"), format!("{FIRST_DAY},NOW")),
            (&format!("projection.{DAY}.interval"), "1".to_owned()),
            (&format!("projection.{DAY}.interval.unit"), "DAYS".to_owned()),
            ("storage.location.template", format!("{location}day=${{{DAY}}}/")),
            (VERSION, table.schema_version.to_string()),
        ];
        let mut input = TableInput::builder()
            .name(name)
            .description(format!("DAP's files of {}, schema version {}", table.name, table.schema_version))
            .table_type("EXTERNAL_TABLE")
            .storage_descriptor(storage.build())
            .partition_keys(column(DAY, "string")?);
        for (key, value) in parameters {
            input = input.parameters(key, value);
        }
        input
            .build()
            .map_err(|e| ArchiveError { message: format!("the catalog's table {name}: {e}"), transient: false })
    }

    /// A Glue failure ([`failed`]); the caller's error names the table.
    fn failed<E>(&self, call: &str, e: aws_sdk_glue::error::SdkError<E>) -> ArchiveError
    where
        E: aws_sdk_glue::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        failed(format!("Glue {call} in database {}", self.database), "the database", e)
    }
}

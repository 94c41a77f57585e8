//! `sql`: one statement on the stack's own Aurora cluster through the RDS Data API, as the
//! administrator (the secret RDS manages), printed as an aligned table or as CSV. No
//! network path to the private cluster is needed. A database the stack does not own has
//! no Data API of the stack's: `sql` says so and how to reach it instead.

use crate::aws::{Aws, Explain};
use crate::project::EnvFlags;
use anyhow::{Result, anyhow, bail};
use aws_sdk_rdsdata::types::Field;
use backon::Retryable as _;
use contract::Backoff;
use stack::app::{ADMIN_SECRET_ARN, DATABASE_CLUSTER_ARN, DATABASE_NAME};
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub env: EnvFlags,
    /// Print CSV (RFC 4180, a header line first) instead of an aligned table.
    #[arg(long)]
    pub csv: bool,
    /// The statement, e.g. "SELECT count(*) FROM canvas.users".
    pub statement: String,
}

pub async fn run(flags: &Flags) -> Result<()> {
    let config = flags.env.load(&crate::project::root())?;
    let aws = Aws::connect(&config.region).await;
    let stack = &config.stack_name;
    let Some(info) = crate::stacks::describe(&aws, stack).await? else {
        bail!("stack {stack} does not exist in {}: deploy it first (cargo xtask deploy)", aws.region);
    };
    let output = |key: &str| info.outputs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let Some(cluster) = output(DATABASE_CLUSTER_ARN) else {
        bail!(
            "stack {stack} uses a database it does not own, on which it turns no RDS Data API on: query it with psql from a machine on its network (the README's \"Reaching the database\")"
        );
    };
    let target = Target {
        cluster,
        secret: output(ADMIN_SECRET_ARN).ok_or_else(|| anyhow!("stack {stack} has no {ADMIN_SECRET_ARN} output"))?,
        database: output(DATABASE_NAME).ok_or_else(|| anyhow!("stack {stack} has no {DATABASE_NAME} output"))?,
    };
    let answer = query(&aws, &target, &flags.statement).await?;
    print!("{}", if flags.csv { answer.csv() } else { answer.aligned() });
    Ok(())
}

/// Where a statement runs and with which credential.
#[derive(Debug, Clone)]
pub struct Target {
    pub cluster: String,
    pub secret: String,
    pub database: String,
}

/// What a statement answered: its columns and rows as text (`None`: NULL), or how many
/// rows it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub updated: i64,
}

/// A paused cluster answers `DatabaseResumingException` while it wakes (about 15 s): asked
/// again every 5 s, 13 times in all.
const RESUMING: Backoff = Backoff { attempts: Some(13), ..Backoff::every(Duration::from_secs(5)) };

pub async fn query(aws: &Aws, target: &Target, statement: &str) -> Result<Answer> {
    let client = aws.rdsdata();
    let send = || {
        client
            .execute_statement()
            .resource_arn(&target.cluster)
            .secret_arn(&target.secret)
            .database(&target.database)
            .sql(statement)
            .include_result_metadata(true)
            .send()
    };
    let out = send
        .retry(RESUMING.builder())
        .sleep(tokio::time::sleep)
        .when(|e| crate::aws::is_code(e, &["DatabaseResumingException"]))
        .notify(|_, _| {
            eprintln!("the database is resuming from its pause; trying again in {} s", RESUMING.first.as_secs())
        })
        .await
        .doing("running the statement through the RDS Data API")?;
    Ok(Answer {
        columns: out.column_metadata().iter().map(|c| c.label().or(c.name()).unwrap_or("?").to_owned()).collect(),
        rows: out.records().iter().map(|r| r.iter().map(text).collect()).collect(),
        updated: out.number_of_records_updated(),
    })
}

/// A field as text, as psql shows it.
fn text(field: &Field) -> Option<String> {
    match field {
        Field::IsNull(true) => None,
        Field::IsNull(false) => Some(String::new()),
        Field::BooleanValue(b) => Some(if *b { "t" } else { "f" }.to_owned()),
        Field::LongValue(n) => Some(n.to_string()),
        Field::DoubleValue(x) => Some(x.to_string()),
        Field::StringValue(s) => Some(s.clone()),
        Field::BlobValue(b) => {
            Some(format!("\\x{}", b.as_ref().iter().map(|x| format!("{x:02x}")).collect::<String>()))
        }
        Field::ArrayValue(a) => Some(format!("{a:?}")),
        _ => Some("?".to_owned()),
    }
}

impl Answer {
    /// Columns padded to their widest value, a rule under the header, `NULL` shown as
    /// nothing (as psql does), and the row count.
    pub fn aligned(&self) -> String {
        if self.columns.is_empty() {
            return format!("{} row(s) changed\n", self.updated);
        }
        let cell = |v: &Option<String>| v.clone().unwrap_or_default().replace('\n', "\\n");
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (w, v) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell(v).chars().count());
            }
        }
        let line = |values: Vec<String>| {
            let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
            format!("{}\n", padded.join(" | ").trim_end())
        };
        let mut out = line(self.columns.clone());
        out.push_str(&format!("{}\n", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-")));
        for row in &self.rows {
            out.push_str(&line(row.iter().map(cell).collect()));
        }
        out.push_str(&format!("({} row{})\n", self.rows.len(), if self.rows.len() == 1 { "" } else { "s" }));
        out
    }

    /// RFC 4180: a header line, fields quoted when they hold a comma, a quote or a line
    /// break, NULL as an empty field.
    pub fn csv(&self) -> String {
        let field = |v: &str| {
            if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_owned() }
        };
        let mut out = String::new();
        for values in std::iter::once(self.columns.iter().map(|c| Some(c.clone())).collect::<Vec<_>>())
            .chain(self.rows.iter().cloned())
        {
            let line: Vec<String> = values.iter().map(|v| field(v.as_deref().unwrap_or_default())).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer {
            columns: vec!["id".into(), "name".into()],
            rows: vec![vec![Some("1".into()), Some("Ann, \"the\" first".into())], vec![Some("22".into()), None]],
            updated: 0,
        }
    }

    #[test]
    fn a_table_is_aligned_and_csv_is_quoted_as_rfc_4180_says() {
        assert_eq!(answer().aligned(), "id | name\n---+-----------------\n1  | Ann, \"the\" first\n22 |\n(2 rows)\n");
        assert_eq!(answer().csv(), "id,name\r\n1,\"Ann, \"\"the\"\" first\"\r\n22,\r\n");
        let changed = Answer { columns: vec![], rows: vec![], updated: 3 };
        assert_eq!(changed.aligned(), "3 row(s) changed\n");
    }

    /// The Data API as moto answers it (moto runs no SQL: it hands back the results it was
    /// given), through the SDK call `sql` makes.
    #[tokio::test]
    async fn the_data_api_s_answer_becomes_rows() {
        let Ok(moto) = testkit::Moto::start(None) else {
            panic!("moto is needed: run `cargo xtask test` once, or set {}", testkit::PYTHON_TOOLS_VAR)
        };
        let results = serde_json::json!({"results": [{
            "records": [[{"longValue": 7}, {"stringValue": "canvas"}], [{"longValue": 8}, {"isNull": true}]],
            "columnMetadata": [{"name": "n", "label": "n"}, {"name": "ns", "label": "ns"}],
            "numberOfRecordsUpdated": 0,
        }]});
        moto.boto(&format!(
            "import urllib.request\n\
             r = urllib.request.Request(kw['endpoint_url'] + '/moto-api/static/rds-data/statement-results', data='{results}'.encode(), method='POST')\n\
             print(urllib.request.urlopen(r).status)",
        ))
        .unwrap();
        let aws = Aws::local("us-east-1", &moto.endpoint()).await;
        let target = Target {
            cluster: "arn:aws:rds:us-east-1:123456789012:cluster:cd2-dev".into(),
            secret: "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin".into(),
            database: "cd2".into(),
        };
        let got = query(&aws, &target, "SELECT n, ns FROM t").await.unwrap();
        assert_eq!(got.columns, ["n", "ns"]);
        assert_eq!(got.rows, [vec![Some("7".into()), Some("canvas".into())], vec![Some("8".into()), None]]);
    }
}

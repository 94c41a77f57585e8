//! Keeping a table in step with its DAP schema, by diffing the schema against the catalog
//! as the official client does, but without losing data: columns that leave the schema
//! and enum labels that leave it are kept (the official client drops the columns and fails
//! on the labels), and users' views over the table are saved and recreated around any
//! `ALTER` that they would block.

use crate::ddl;
use crate::error::{DbContext, ReplicaError};
use crate::model::{Column, SqlType, TableModel, quote_ident, quote_literal};
use crate::retype::{self, RetypeSettings};
use crate::views;
use sqlx::postgres::PgConnection;

/// A column as the catalog has it.
#[derive(Debug, Clone)]
pub struct DbColumn {
    pub name: String,
    pub type_name: String,
    pub not_null: bool,
    pub comment: Option<String>,
}

pub async fn columns(db: &mut PgConnection, schema: &str, table: &str) -> Result<Vec<DbColumn>, sqlx::Error> {
    let rows: Vec<(String, String, bool, Option<String>)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, col_description(a.attrelid, a.attnum)
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, type_name, not_null, comment)| DbColumn { name, type_name, not_null, comment })
        .collect())
}

pub async fn table_exists(db: &mut PgConnection, schema: &str, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(db)
    .await
}

async fn enum_labels(db: &mut PgConnection, schema: &str, name: &str) -> Result<Option<Vec<String>>, sqlx::Error> {
    // The type's labels in order, or no row at all when there is no such type.
    sqlx::query_scalar(
        "SELECT array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2",
    )
    .bind(schema)
    .bind(name)
    .fetch_optional(db)
    .await
}

/// Creates the table's enum types, or adds the labels they lack (the official `dropdb`
/// leaves types behind, and its `initdb` then fails on them). Labels DAP no longer lists
/// are kept: rows may still hold them. Returns what changed, for the run report; a label
/// kept is reported only when `previous` (the schema the table was last loaded with)
/// still had it, so that the report says it once, in the run where DAP dropped it.
pub async fn ensure_enums(
    db: &mut PgConnection,
    model: &TableModel,
    previous: Option<&TableModel>,
) -> Result<Vec<String>, ReplicaError> {
    let table = model.table_ref().to_string();
    let mut notes = Vec::new();
    for (schema, name, labels) in model.enums() {
        match enum_labels(&mut *db, schema, name).await.doing(&table, "reading enum types")? {
            None => {
                crate::batch(&ddl::create_enum(schema, name, labels))
                    .execute(&mut *db)
                    .await
                    .doing(&table, "creating an enum type")?;
            }
            Some(existing) => {
                for label in labels.iter().filter(|l| !existing.contains(l)) {
                    crate::batch(&ddl::add_enum_label(schema, name, label))
                        .execute(&mut *db)
                        .await
                        .doing(&table, "adding an enum label")?;
                    notes.push(format!("enum {schema}.{name}: added label `{label}`"));
                }
                let was_listed = |label: &String| {
                    previous
                        .is_none_or(|p| p.enums().any(|(s, n, old)| s == schema && n == name && old.contains(label)))
                };
                for label in existing.iter().filter(|l| !labels.contains(l) && was_listed(l)) {
                    notes.push(format!("enum {schema}.{name}: label `{label}` is no longer in the DAP schema; kept, since rows may hold it"));
                }
            }
        }
    }
    Ok(notes)
}

/// Brings `schema.table` in step with `model`. Runs in the caller's transaction.
/// `previous` is the schema the table was last loaded with (`table_sync`'s description):
/// what DAP dropped and the replica keeps is reported only when it left since then.
/// A type change on a table larger than `settings` allow in place is only started here
/// (see [`crate::retype`]); the caller finishes it.
pub async fn migrate(
    tx: &mut PgConnection,
    model: &TableModel,
    previous: Option<&TableModel>,
    schema: &str,
    budget: crate::Budget,
    settings: RetypeSettings,
) -> Result<Vec<String>, ReplicaError> {
    let table = model.table_ref().to_string();
    let qualified = ddl::qualified(schema, &model.name);
    crate::batch(ddl::DDL_LOCK).execute(&mut *tx).await.doing(&table, "waiting for other schema changes")?;
    let mut notes = ensure_enums(&mut *tx, model, previous).await?;
    // Changes under way whose type is still the one DAP has go on; others are given up.
    let mut under_way = Vec::new();
    for p in retype::pending(&mut *tx, &model.table_ref()).await? {
        if model.column(&p.column).is_some_and(|c| c.sql_type.ddl() == p.target) {
            under_way.push(p);
        } else {
            retype::abandon(&mut *tx, model, schema, &p).await?;
        }
    }
    let mut existing = columns(&mut *tx, schema, &model.name).await.doing(&table, "reading the table's columns")?;
    existing.retain(|c| !under_way.iter().any(|p| p.shadow == c.name));
    let mut large = None;
    let mut statements: Vec<String> = Vec::new();
    let mut retypes: Vec<String> = Vec::new();
    for column in &model.columns {
        match existing.iter().find(|c| c.name == column.name) {
            None => {
                // Added nullable: existing rows have no value for it.
                statements.push(format!(
                    "ALTER TABLE {qualified} ADD COLUMN {} {}",
                    quote_ident(&column.name),
                    column.sql_type.ddl()
                ));
                notes.push(format!("added column `{}` {}", column.name, column.sql_type.ddl()));
                if let Some(c) = &column.comment {
                    statements.push(comment(&qualified, column, c));
                }
            }
            Some(db) => {
                if under_way.iter().any(|p| p.column == column.name) {
                    // Being converted in batches: the old column keeps its type until then.
                } else if narrows(&db.type_name, &column.sql_type) {
                    // A cast would cut or round what the rows hold; what DAP sends now fits
                    // the wider type as well.
                    if previous.is_none_or(|p| p.column(&column.name).is_none_or(|c| c.sql_type != column.sql_type)) {
                        notes.push(format!(
                            "column `{}`: DAP narrowed its type from {} to {}; kept as {}, so that no value is cut or rounded (what DAP sends fits both)",
                            column.name,
                            db.type_name,
                            column.sql_type.ddl(),
                            db.type_name
                        ));
                    }
                } else if !same_type(&db.type_name, &column.sql_type) {
                    let bytes = match large {
                        Some(b) => b,
                        None => *large.insert(
                            retype::table_bytes(&mut *tx, schema, &model.name)
                                .await
                                .doing(&table, "measuring the table")?,
                        ),
                    };
                    if bytes > settings.in_place_max_bytes && column.name != model.primary_key {
                        retype::plan(&mut *tx, model, schema, column).await?;
                        notes.push(format!(
                            "column `{}`: type {} -> {}, converting in batches ({} MiB table): the table is synced again when it is done",
                            column.name,
                            db.type_name,
                            column.sql_type.ddl(),
                            bytes >> 20
                        ));
                        continue;
                    }
                    if column.name == model.primary_key && !under_way.is_empty() {
                        retype::restart(&mut *tx, &model.table_ref()).await?;
                    }
                    retypes.push(format!(
                        "ALTER TABLE {qualified} ALTER COLUMN {name} SET DATA TYPE {t} USING {name}::{t}",
                        name = quote_ident(&column.name),
                        t = column.sql_type.ddl()
                    ));
                    notes.push(format!("column `{}`: type {} -> {}", column.name, db.type_name, column.sql_type.ddl()));
                }
                if db.not_null && !column.not_null && column.name != model.primary_key {
                    statements.push(format!(
                        "ALTER TABLE {qualified} ALTER COLUMN {} DROP NOT NULL",
                        quote_ident(&column.name)
                    ));
                    notes.push(format!("column `{}` may now be null", column.name));
                }
                if db.comment != column.comment {
                    match &column.comment {
                        Some(c) => statements.push(comment(&qualified, column, c)),
                        None => statements
                            .push(format!("COMMENT ON COLUMN {qualified}.{} IS NULL", quote_ident(&column.name))),
                    }
                }
            }
        }
    }
    for db in existing.iter().filter(|c| model.column(&c.name).is_none()) {
        // The official client drops the column and its data; we keep both.
        if db.not_null {
            statements.push(format!("ALTER TABLE {qualified} ALTER COLUMN {} DROP NOT NULL", quote_ident(&db.name)));
        }
        if previous.is_some_and(|p| p.column(&db.name).is_none()) {
            continue;
        }
        notes.push(format!(
            "column `{}` is no longer in the DAP schema; kept with its data (drop it by hand when no view needs it)",
            db.name
        ));
    }
    for s in &statements {
        budget.limit(tx, &table).await?;
        crate::batch(s).execute(&mut *tx).await.doing(&table, "changing the table to the new schema")?;
    }
    if !retypes.is_empty() {
        // Views and materialized views block a type change: save them, drop them, change,
        // and recreate them with their grants, comments and indexes, all in this transaction.
        let set_aside =
            views::set_aside(&mut *tx, schema, &model.name).await.doing(&table, "setting dependent views aside")?;
        for s in &retypes {
            budget.limit(tx, &table).await?;
            crate::batch(s).execute(&mut *tx).await.doing(&table, "changing a column type")?;
        }
        budget.limit(tx, &table).await?;
        let left_empty =
            views::put_back(&mut *tx, schema, &model.name).await.doing(&table, "recreating dependent views")?;
        if set_aside > 0 {
            notes.push(format!("recreated {set_aside} dependent view(s)"));
        }
        notes.extend(left_empty);
    }
    Ok(notes)
}

fn comment(qualified: &str, column: &Column, text: &str) -> String {
    format!("COMMENT ON COLUMN {qualified}.{} IS {}", quote_ident(&column.name), quote_literal(text))
}

/// Whether changing a column of type `catalog` (as `format_type` writes it) to `to` would
/// lose what rows may hold without an error: an explicit cast truncates `varchar`, rounds
/// `numeric` and `real`, drops a timestamp's time; a smaller integer fails on large values.
fn narrows(catalog: &str, to: &SqlType) -> bool {
    if let (Some(inner), SqlType::Array(to)) = (catalog.strip_suffix("[]"), to) {
        return narrows(inner, to);
    }
    let int_rank = |t: &str| match t {
        "smallint" => Some(1),
        "integer" => Some(2),
        "bigint" => Some(3),
        _ => None,
    };
    // (precision, scale) of a numeric; `numeric` without them holds any.
    let numeric = |t: &str| -> Option<Option<(u32, u32)>> {
        let args = t.strip_prefix("numeric")?;
        if args.is_empty() {
            return Some(None);
        }
        let (p, s) = args.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
        Some(Some((p.trim().parse().ok()?, s.trim().parse().ok()?)))
    };
    // The longest string a text type holds; `None`: unbounded.
    let length = |t: &str| -> Option<Option<u64>> {
        match t {
            "text" | "character varying" => Some(None),
            _ => {
                let n = t.strip_prefix("character varying(").or_else(|| t.strip_prefix("character("))?;
                Some(Some(n.strip_suffix(')')?.parse().ok()?))
            }
        }
    };
    match to {
        SqlType::SmallInt | SqlType::Integer => {
            let want = if matches!(to, SqlType::SmallInt) { 1 } else { 2 };
            int_rank(catalog).is_some_and(|r| r > want) || catalog == "real" || catalog == "double precision"
        }
        SqlType::Real => catalog == "double precision" || catalog == "bigint" || numeric(catalog).is_some(),
        SqlType::Decimal(p, s) => match numeric(catalog) {
            Some(None) => true,
            // Fewer decimals, or fewer digits before the point.
            Some(Some((op, os))) => *s < os || i64::from(*p) - i64::from(*s) < i64::from(op) - i64::from(os),
            None => catalog == "real" || catalog == "double precision",
        },
        SqlType::Varchar(n) => shorter(length(catalog), *n),
        SqlType::Char(n) => shorter(length(catalog), u64::try_from(*n).unwrap_or(u64::MAX)),
        SqlType::Date => catalog.starts_with("timestamp"),
        _ => false,
    }
}

/// A text type of at most `n` characters holds less than `old` (`Some(None)`: unbounded).
fn shorter(old: Option<Option<u64>>, n: u64) -> bool {
    match old {
        Some(None) => true,
        Some(Some(old)) => n < old,
        None => false,
    }
}

/// Compares the catalog's `format_type` with the model's type; `format_type` quotes
/// names that need it and leaves out the schema when it is on the search path.
fn same_type(catalog: &str, t: &SqlType) -> bool {
    let want = t.catalog_name();
    if catalog == want {
        return true;
    }
    match t {
        SqlType::Enum { name, .. } => {
            let bare = catalog.rsplit('.').next().unwrap_or(catalog).trim_matches('"');
            bare == name
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_is_what_a_cast_would_cut_or_round() {
        let narrowing = [
            ("character varying(200)", SqlType::Varchar(100)),
            ("text", SqlType::Varchar(255)),
            ("character(4)", SqlType::Char(2)),
            ("numeric(10,4)", SqlType::Decimal(10, 2)),
            ("numeric(10,2)", SqlType::Decimal(8, 2)),
            ("numeric", SqlType::Decimal(38, 10)),
            ("double precision", SqlType::Real),
            ("bigint", SqlType::Integer),
            ("integer", SqlType::SmallInt),
            ("timestamp without time zone", SqlType::Date),
            ("character varying(10)[]", SqlType::Array(Box::new(SqlType::Varchar(5)))),
        ];
        for (catalog, to) in narrowing {
            assert!(narrows(catalog, &to), "{catalog} -> {to:?}");
        }
        let widening = [
            ("character varying(100)", SqlType::Varchar(200)),
            ("character varying(100)", SqlType::Text),
            ("numeric(10,2)", SqlType::Decimal(12, 4)),
            ("real", SqlType::Double),
            ("smallint", SqlType::Integer),
            ("integer", SqlType::BigInt),
            ("date", SqlType::Timestamp),
            ("text", SqlType::Jsonb),
            ("smallint[]", SqlType::Array(Box::new(SqlType::BigInt))),
        ];
        for (catalog, to) in widening {
            assert!(!narrows(catalog, &to), "{catalog} -> {to:?}");
        }
    }
}

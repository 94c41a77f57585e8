//! A DAP table schema (a strict JSON Schema dialect) as a PostgreSQL table, with the types
//! the official client 2.3.1 chooses (`dap-protocol.md` section 8.2).
//!
//! Where that client breaks, we map to something sensible instead: a one-value string
//! enum still gets its enum type, and objects without properties, arrays of objects and
//! `oneOf` become `jsonb`.

use contract::{Namespace, TableRef};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlType {
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Decimal(u32, u32),
    Text,
    Varchar(u64),
    Char(usize),
    Boolean,
    Timestamp,
    Date,
    Time,
    Interval,
    Uuid,
    Inet,
    Jsonb,
    /// A PostgreSQL enum type `"<ns>"."<table>__<column>"` with these labels.
    Enum {
        schema: String,
        name: String,
        labels: Vec<String>,
    },
    /// `T ARRAY`; the TSV carries a JSON array.
    Array(Box<SqlType>),
}

impl SqlType {
    /// As written in `CREATE TABLE`, the way the official client writes it.
    pub fn ddl(&self) -> String {
        match self {
            SqlType::SmallInt => "smallint".into(),
            SqlType::Integer => "integer".into(),
            SqlType::BigInt => "bigint".into(),
            SqlType::Real => "real".into(),
            SqlType::Double => "double precision".into(),
            SqlType::Decimal(p, s) => format!("decimal({p}, {s})"),
            SqlType::Text => "text".into(),
            SqlType::Varchar(n) => format!("varchar({n})"),
            SqlType::Char(n) => format!("char({n})"),
            SqlType::Boolean => "boolean".into(),
            SqlType::Timestamp => "timestamp".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Inet => "inet".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Enum { schema, name, .. } => {
                format!("{}.{}", quote_ident(schema), quote_ident(name))
            }
            SqlType::Array(inner) => format!("{} ARRAY", inner.ddl()),
        }
    }

    /// As PostgreSQL's `format_type` reports it, for comparing with the database.
    pub fn catalog_name(&self) -> String {
        match self {
            SqlType::Double => "double precision".into(),
            SqlType::Decimal(p, s) => format!("numeric({p},{s})"),
            SqlType::Varchar(n) => format!("character varying({n})"),
            SqlType::Char(n) => format!("character({n})"),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::Enum { schema, name, .. } => format!("{schema}.{name}"),
            SqlType::Array(inner) => format!("{}[]", inner.catalog_name()),
            other => other.ddl(),
        }
    }

    pub fn is_array(&self) -> bool {
        matches!(self, SqlType::Array(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub sql_type: SqlType,
    pub not_null: bool,
    pub comment: Option<String>,
}

/// A DAP table as the replica holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct TableModel {
    pub namespace: String,
    pub name: String,
    /// Key columns first, then value columns, in schema order.
    pub columns: Vec<Column>,
    /// The first property of `key`: the official client's single-column primary key.
    pub primary_key: String,
    /// The schema without `meta`, as stored in `table_sync.schema_description`.
    pub description: Value,
}

#[derive(Debug, thiserror::Error)]
#[error("the DAP schema of {table} cannot be replicated: {problem}")]
pub struct SchemaError {
    pub table: String,
    pub problem: String,
}

/// `"name"`, with inner quotes doubled: every identifier from the API goes through this.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, for DDL that cannot take parameters (enum labels, comments).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl TableModel {
    pub fn from_schema(table: &TableRef, schema: &Value) -> Result<Self, SchemaError> {
        let fail = |problem: String| SchemaError { table: table.to_string(), problem };
        if Namespace::from_name(&table.namespace).is_none() {
            return Err(fail(format!("namespace `{}` is not one of {}", table.namespace, Namespace::names())));
        }
        let definitions = schema.get("definitions").and_then(Value::as_object).cloned().unwrap_or_default();
        let resolver = Resolver { definitions: &definitions };
        let part = |name: &str| -> Result<(Map<String, Value>, Vec<String>), SchemaError> {
            let node = match schema["properties"].get(name) {
                Some(n) => resolver.resolve(n).map_err(&fail)?,
                None => return Ok((Map::new(), vec![])),
            };
            let props = node.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            let required = node
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            Ok((props, required))
        };
        let (keys, key_required) = part("key")?;
        let (values, value_required) = part("value")?;
        let primary_key = keys.keys().next().cloned().ok_or_else(|| fail("`key` has no properties".into()))?;
        let mut columns = Vec::new();
        for (props, required) in [(&keys, &key_required), (&values, &value_required)] {
            for (name, node) in props {
                if columns.iter().any(|c: &Column| &c.name == name) {
                    return Err(fail(format!("column `{name}` is both a key and a value")));
                }
                let node = resolver.resolve(node).map_err(&fail)?;
                let sql_type = resolver.sql_type(table, name, node).map_err(&fail)?;
                let comment =
                    node.get("description").or_else(|| node.get("title")).and_then(Value::as_str).map(str::to_owned);
                columns.push(Column { name: name.clone(), sql_type, not_null: required.contains(name), comment });
            }
        }
        let mut description = schema.clone();
        if let Some(p) = description.get_mut("properties").and_then(Value::as_object_mut) {
            p.shift_remove("meta");
        }
        Ok(Self { namespace: table.namespace.clone(), name: table.table.clone(), columns, primary_key, description })
    }

    /// The table this models: for the calls that take a [`TableRef`] when a migration has
    /// only the model at hand, and its name in errors and logs.
    pub fn table_ref(&self) -> TableRef {
        TableRef::new(&self.namespace, &self.name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The enum types the table needs, in column order.
    pub fn enums(&self) -> impl Iterator<Item = (&str, &str, &[String])> {
        self.columns.iter().filter_map(|c| match &c.sql_type {
            SqlType::Enum { schema, name, labels } => Some((schema.as_str(), name.as_str(), &labels[..])),
            _ => None,
        })
    }

    /// `canvas_logs.web_logs` may repeat keys upstream, so its init upserts.
    pub fn repeats_keys(&self) -> bool {
        self.namespace == Namespace::CanvasLogs.as_str() && self.name == "web_logs"
    }
}

struct Resolver<'a> {
    definitions: &'a Map<String, Value>,
}

impl Resolver<'_> {
    fn resolve<'n>(&'n self, node: &'n Value) -> Result<&'n Value, String> {
        let mut node = node;
        for _ in 0..16 {
            let Some(r) = node.get("$ref").and_then(Value::as_str) else {
                return Ok(node);
            };
            let name = r.strip_prefix("#/definitions/").ok_or_else(|| format!("unsupported $ref `{r}`"))?;
            node = self.definitions.get(name).ok_or_else(|| format!("$ref `{r}` names no definition"))?;
        }
        Err("$ref chain too long".into())
    }

    fn sql_type(&self, table: &TableRef, column: &str, node: &Value) -> Result<SqlType, String> {
        if node.get("oneOf").is_some() || node.get("anyOf").is_some() {
            return Ok(SqlType::Jsonb);
        }
        let kind = node.get("type").and_then(Value::as_str).unwrap_or("");
        let format = node.get("format").and_then(Value::as_str);
        Ok(match kind {
            "integer" => match format {
                Some("int16") => SqlType::SmallInt,
                Some("int32") => SqlType::Integer,
                Some("int64") => SqlType::BigInt,
                _ => integer_for_range(node),
            },
            "number" => match format {
                Some("float32") => SqlType::Real,
                _ => decimal(node).unwrap_or(SqlType::Double),
            },
            "boolean" => SqlType::Boolean,
            "string" => {
                if let Some(c) = node.get("const").and_then(Value::as_str) {
                    SqlType::Char(c.chars().count())
                } else if let Some(labels) = node.get("enum").and_then(Value::as_array) {
                    let labels: Vec<String> = labels.iter().filter_map(Value::as_str).map(str::to_owned).collect();
                    if labels.is_empty() {
                        return Err(format!("column `{column}` is an enum without labels"));
                    }
                    SqlType::Enum {
                        schema: table.namespace.clone(),
                        name: format!("{}__{column}", table.table),
                        labels,
                    }
                } else {
                    match format {
                        Some("date-time") => SqlType::Timestamp,
                        Some("date") => SqlType::Date,
                        Some("time") => SqlType::Time,
                        Some("duration") => SqlType::Interval,
                        Some("uuid") => SqlType::Uuid,
                        Some("ipv4" | "ipv6") => SqlType::Inet,
                        _ => match node.get("maxLength").and_then(Value::as_u64) {
                            Some(n) => SqlType::Varchar(n),
                            None => SqlType::Text,
                        },
                    }
                }
            }
            "object" => SqlType::Jsonb,
            "array" => {
                let items = node.get("items").map(|i| self.resolve(i)).transpose()?;
                match items {
                    Some(i)
                        if matches!(
                            i.get("type").and_then(Value::as_str),
                            Some("string" | "integer" | "number" | "boolean")
                        ) =>
                    {
                        match self.sql_type(table, column, i)? {
                            // Enum arrays stay text: the official client creates no type for them.
                            SqlType::Enum { .. } => SqlType::Array(Box::new(SqlType::Text)),
                            scalar => SqlType::Array(Box::new(scalar)),
                        }
                    }
                    _ => SqlType::Jsonb,
                }
            }
            other => return Err(format!("column `{column}` has unsupported type `{other}`")),
        })
    }
}

fn integer_for_range(node: &Value) -> SqlType {
    let bounds = if let Some(e) = node.get("enum").and_then(Value::as_array) {
        let v: Vec<i64> = e.iter().filter_map(Value::as_i64).collect();
        v.iter().min().zip(v.iter().max()).map(|(a, b)| (*a, *b))
    } else {
        node.get("minimum").and_then(Value::as_i64).zip(node.get("maximum").and_then(Value::as_i64))
    };
    match bounds {
        Some((lo, hi)) if lo >= i16::MIN.into() && hi <= i16::MAX.into() => SqlType::SmallInt,
        Some((lo, hi)) if lo >= i32::MIN.into() && hi <= i32::MAX.into() => SqlType::Integer,
        _ => SqlType::BigInt,
    }
}

/// `exclusiveMinimum = -exclusiveMaximum` with `multipleOf` is a fixed-point decimal.
fn decimal(node: &Value) -> Option<SqlType> {
    let max = node.get("exclusiveMaximum")?.as_f64()?;
    let min = node.get("exclusiveMinimum")?.as_f64()?;
    let step = node.get("multipleOf")?.as_f64()?;
    if min != -max || step <= 0.0 || max <= 0.0 {
        return None;
    }
    let scale = (-step.log10()).round().max(0.0) as u32;
    let precision = max.log10().round() as u32 + scale;
    Some(SqlType::Decimal(precision, scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: Value) -> Value {
        json!({
            "type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": {
                "key": {"type": "object", "properties": {"id": {"type": "integer", "format": "int64", "description": "Primary key"}}, "required": ["id"]},
                "value": {"type": "object", "properties": value, "required": ["name"]},
                "meta": {"type": "object", "properties": {"ts": {"type": "string", "format": "date-time"}}}
            }
        })
    }

    #[test]
    fn types_follow_the_official_mapping() {
        let s = schema(json!({
            "name": {"type": "string", "maxLength": 255},
            "state": {"type": "string", "enum": ["active", "deleted"]},
            "only": {"type": "string", "enum": ["Account"]},
            "small": {"type": "integer", "minimum": 0, "maximum": 100},
            "mid": {"type": "integer", "enum": [0, 100000]},
            "amount": {"type": "number", "exclusiveMinimum": -1000, "exclusiveMaximum": 1000, "multipleOf": 0.01},
            "score": {"type": "number"},
            "f": {"type": "number", "format": "float32"},
            "at": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "const": "abc"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "ids": {"type": "array", "items": {"type": "integer", "format": "int64"}},
            "objs": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "settings": {"type": "object", "properties": {"a": {"type": "boolean"}}, "additionalProperties": false},
            "free": {"type": "object"},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        }));
        let m = TableModel::from_schema(&TableRef::new("canvas", "accounts"), &s).unwrap();
        let ddl: Vec<(String, String, bool)> =
            m.columns.iter().map(|c| (c.name.clone(), c.sql_type.ddl(), c.not_null)).collect();
        let expect = [
            ("id", "bigint", true),
            ("name", "varchar(255)", true),
            ("state", "\"canvas\".\"accounts__state\"", false),
            ("only", "\"canvas\".\"accounts__only\"", false),
            ("small", "smallint", false),
            ("mid", "integer", false),
            ("amount", "decimal(5, 2)", false),
            ("score", "double precision", false),
            ("f", "real", false),
            ("at", "timestamp", false),
            ("code", "char(3)", false),
            ("tags", "text ARRAY", false),
            ("ids", "bigint ARRAY", false),
            ("objs", "jsonb", false),
            ("settings", "jsonb", false),
            ("free", "jsonb", false),
            ("either", "jsonb", false),
        ];
        let expect: Vec<(String, String, bool)> =
            expect.iter().map(|(a, b, c)| ((*a).into(), (*b).into(), *c)).collect();
        assert_eq!(ddl, expect);
        assert_eq!(m.primary_key, "id");
        assert!(m.description["properties"].get("meta").is_none());
        assert_eq!(m.column("id").unwrap().comment.as_deref(), Some("Primary key"));
    }

    #[test]
    fn unknown_namespaces_and_keyless_tables_are_refused() {
        let s = schema(json!({"name": {"type": "string"}}));
        assert!(
            TableModel::from_schema(&TableRef::new("other", "t"), &s)
                .unwrap_err()
                .to_string()
                .contains("namespace `other`")
        );
        let keyless = json!({"properties": {"value": {"properties": {"a": {"type": "string"}}}}});
        assert!(
            TableModel::from_schema(&TableRef::new("canvas", "t"), &keyless)
                .unwrap_err()
                .to_string()
                .contains("`key` has no properties")
        );
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}

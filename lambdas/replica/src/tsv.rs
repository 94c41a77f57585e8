//! DAP's TSV, turned line by line into PostgreSQL `COPY` text.
//!
//! DAP writes TSV "in compliance with PostgreSQL COPY", so most fields pass through
//! untouched; only the header is read, `meta.*` fields are dropped (but `meta.action`,
//! which sync keeps), and array columns are converted from JSON arrays to array literals.

use crate::model::TableModel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Skip,
    Action,
    Column { array: bool },
}

/// How one object's fields map to table columns, read from its header.
#[derive(Clone, Debug)]
pub struct Layout {
    roles: Vec<Role>,
    /// Target columns, in the order the fields come.
    pub columns: Vec<String>,
    pub has_action: bool,
    /// The header's fields as they come (`meta.ts`, `key.id`, ...).
    pub header: Vec<String>,
}

/// What is wrong with one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("has {found} fields where the header has {expected}")]
    FieldCount { found: usize, expected: usize },
    #[error("has meta.action `{0}`, expected U or D")]
    Action(String),
    #[error("column `{column}`: {message}")]
    Value { column: String, message: String },
}

impl Layout {
    /// Reads a header; `with_action` keeps `meta.action` (incremental results).
    pub fn from_header(header: &str, model: &TableModel, with_action: bool) -> Result<Self, String> {
        let mut roles = Vec::new();
        let mut columns = Vec::new();
        let mut has_action = false;
        let labels: Vec<String> = header.trim_end_matches(['\n', '\r']).split('\t').map(str::to_owned).collect();
        for label in labels.iter().map(String::as_str) {
            let role = if label == "meta.action" && with_action {
                has_action = true;
                Role::Action
            } else if label.starts_with("meta.") {
                Role::Skip
            } else if let Some(name) = label.strip_prefix("key.").or_else(|| label.strip_prefix("value.")) {
                let column = model
                    .column(name)
                    .ok_or_else(|| format!("header field `{label}` is not a column of the table's current schema"))?;
                if columns.iter().any(|c| c == name) {
                    return Err(format!("header field `{label}` appears twice"));
                }
                columns.push(name.to_owned());
                Role::Column { array: column.sql_type.is_array() }
            } else {
                return Err(format!("header field `{label}` is neither meta.*, key.* nor value.*"));
            };
            roles.push(role);
        }
        if !columns.contains(&model.primary_key) {
            return Err(format!("the header has no field for the key column `{}`", model.primary_key));
        }
        if with_action && !has_action {
            return Err("the header of an incremental result has no meta.action".into());
        }
        Ok(Self { roles, columns, has_action, header: labels })
    }

    /// Appends the COPY text of `line` (without its newline) to `out`: the action first
    /// when the layout has one, then the columns. Returns the action byte (`b'U'`/`b'D'`),
    /// or 0 when there is none.
    pub fn transform(&self, line: &[u8], out: &mut Vec<u8>) -> Result<u8, LineError> {
        let found = line.split(|b| *b == b'\t').count();
        if found != self.roles.len() {
            return Err(LineError::FieldCount { found, expected: self.roles.len() });
        }
        let start = out.len();
        let mut action = 0;
        if self.has_action {
            // Reserve the action's place at the front; filled in below.
            out.extend_from_slice(b"?\t");
        }
        let mut first = true;
        let mut column = 0;
        for (field, role) in line.split(|b| *b == b'\t').zip(&self.roles) {
            match role {
                Role::Skip => {}
                Role::Action => {
                    action = match field {
                        b"U" => b'U',
                        b"D" => b'D',
                        other => {
                            return Err(LineError::Action(String::from_utf8_lossy(other).into_owned()));
                        }
                    };
                    out[start] = action;
                }
                Role::Column { array } => {
                    if !first {
                        out.push(b'\t');
                    }
                    first = false;
                    if *array && field != b"\\N" {
                        json_array_to_copy(field, out)
                            .map_err(|message| LineError::Value { column: self.columns[column].clone(), message })?;
                    } else {
                        out.extend_from_slice(field);
                    }
                    column += 1;
                }
            }
        }
        out.push(b'\n');
        Ok(action)
    }
}

/// Undoes COPY text escapes.
fn unescape(field: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(field.len());
    let mut it = field.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'b') => out.push(8),
            Some(b'f') => out.push(12),
            Some(b'v') => out.push(11),
            Some(b'0') => out.push(0),
            Some(&other) => out.push(other),
            None => return Err("ends in a lone backslash".into()),
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8".into())
}

/// The common case without a JSON parser: a flat array of strings without escapes,
/// numbers, booleans and nulls. `None` sends anything else to the full parser.
fn simple_array(text: &str, literal: &mut String) -> Option<()> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    literal.push('{');
    if !inner.is_empty() {
        for (i, item) in inner.split(',').enumerate() {
            if i > 0 {
                literal.push(',');
            }
            let item = item.trim();
            if let Some(s) = item.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                if s.contains(['"', '\\']) {
                    return None;
                }
                literal.push('"');
                literal.push_str(s);
                literal.push('"');
            } else if item == "null" {
                literal.push_str("NULL");
            } else if item == "true"
                || item == "false"
                || (!item.is_empty() && item.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)))
            {
                literal.push_str(item);
            } else {
                return None;
            }
        }
    }
    literal.push('}');
    Some(())
}

/// A JSON array (COPY-escaped) as a PostgreSQL array literal (COPY-escaped).
fn json_array_to_copy(field: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    // Without backslashes there is nothing to unescape, on either level.
    if !field.contains(&b'\\') {
        let text = std::str::from_utf8(field).map_err(|_| "is not UTF-8".to_owned())?;
        let mut literal = String::with_capacity(text.len() + 2);
        if simple_array(text, &mut literal).is_some() {
            out.extend_from_slice(literal.as_bytes());
            return Ok(());
        }
    }
    let text = unescape(field)?;
    let items: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| format!("`{text}` is not a JSON array ({e})"))?;
    let mut literal = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            literal.push(',');
        }
        match item {
            serde_json::Value::Null => literal.push_str("NULL"),
            serde_json::Value::String(s) => {
                literal.push('"');
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        literal.push('\\');
                    }
                    literal.push(c);
                }
                literal.push('"');
            }
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => literal.push_str(&item.to_string()),
            other => return Err(format!("array element `{other}` is not a scalar")),
        }
    }
    literal.push('}');
    for b in literal.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> TableModel {
        let schema = json!({"properties": {
            "key": {"properties": {"id": {"type": "integer"}}},
            "value": {"properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}
        }});
        TableModel::from_schema(&crate::TableRef::new("canvas", "t"), &schema).unwrap()
    }

    #[test]
    fn snapshot_lines_drop_meta_and_convert_arrays() {
        let layout = Layout::from_header("meta.ts\tkey.id\tvalue.tags\tvalue.name", &model(), false).unwrap();
        assert_eq!(layout.columns, ["id", "tags", "name"]);
        let mut out = Vec::new();
        // The array holds "a", `b\c"` and null; the text field holds a tab.
        let line = format!("2024-01-01T00:00:00Z\t7\t{}\tx\\ty", r#"["a","b\\\\c\\"",null]"#);
        assert_eq!(layout.transform(line.as_bytes(), &mut out), Ok(0));
        let expected = format!("7\t{}\tx\\ty\n", r#"{"a","b\\\\c\\"",NULL}"#);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn arrays_take_the_fast_path_or_the_parser_alike() {
        for (json, literal) in [
            (r#"["a", "b c",null, 1, -2.5e3, true]"#, r#"{"a","b c",NULL,1,-2.5e3,true}"#),
            ("[]", "{}"),
            (r#"["x,y"]"#, r#"{"x,y"}"#),
        ] {
            let mut out = Vec::new();
            json_array_to_copy(json.as_bytes(), &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), literal, "{json}");
        }
        let mut out = Vec::new();
        assert!(json_array_to_copy(b"[oops]", &mut out).unwrap_err().contains("not a JSON array"));
        assert!(json_array_to_copy(br#"[{"a":1}]"#, &mut out).unwrap_err().contains("not a scalar"));
    }

    #[test]
    fn incremental_lines_lead_with_the_action() {
        let layout =
            Layout::from_header("meta.ts\tmeta.action\tkey.id\tvalue.name\tvalue.tags", &model(), true).unwrap();
        let mut out = Vec::new();
        assert_eq!(layout.transform(b"ts\tD\t3\t\\N\t\\N", &mut out), Ok(b'D'));
        assert_eq!(out, b"D\t3\t\\N\t\\N\n");
        assert_eq!(layout.transform(b"ts\tX\t3\t\\N\t\\N", &mut out), Err(LineError::Action("X".into())));
        assert_eq!(layout.transform(b"ts\tU\t3", &mut out), Err(LineError::FieldCount { found: 3, expected: 5 }));
    }

    #[test]
    fn headers_must_match_the_schema() {
        let m = model();
        assert!(Layout::from_header("meta.ts\tkey.id\tvalue.nope", &m, false).unwrap_err().contains("`value.nope`"));
        assert!(Layout::from_header("meta.ts\tvalue.name", &m, false).unwrap_err().contains("key column `id`"));
        assert!(Layout::from_header("meta.ts\tkey.id", &m, true).unwrap_err().contains("meta.action"));
    }
}

//! The emulator's tables: versioned schemas and a log of committed changes, from which
//! snapshots and consolidated incremental results are cut, as TSV files the way DAP
//! writes them.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;

/// One committed change of one record.
#[derive(Clone, Debug)]
struct Event {
    ts: DateTime<Utc>,
    key: String,
    /// `None` for a delete.
    record: Option<IndexMap<String, Value>>,
}

#[derive(Clone, Debug, Default)]
pub struct TableData {
    /// Schema documents, version 1 first.
    pub schemas: Vec<Value>,
    /// Upstream repeats keys in this table (`canvas_logs.web_logs`): results are not consolidated.
    pub repeats_keys: bool,
    events: Vec<Event>,
    /// Rows made on demand instead of events (benchmarks).
    pub generated: Option<Generated>,
}

/// A generated table: `rows` rows; an incremental result holds every `change_every`-th
/// row at the current revision.
#[derive(Clone, Copy, Debug)]
pub struct Generated {
    pub rows: u64,
    pub change_every: u64,
    pub revision: u32,
}

/// Column names of a schema: (key columns, value columns), in schema order.
pub fn columns(schema: &Value) -> (Vec<String>, Vec<String>) {
    let names = |part: &str| -> Vec<String> {
        schema["properties"][part]["properties"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    (names("key"), names("value"))
}

impl TableData {
    pub fn schema(&self) -> &Value {
        self.schemas.last().expect("a table has a schema")
    }

    pub fn version(&self) -> i64 {
        self.schemas.len() as i64
    }

    fn key_of(&self, record: &IndexMap<String, Value>) -> String {
        let (keys, _) = columns(self.schema());
        keys.iter().map(|k| record.get(k).map(tsv_field).unwrap_or_else(|| "\\N".into())).collect::<Vec<_>>().join("\t")
    }

    pub fn upsert(&mut self, ts: DateTime<Utc>, record: IndexMap<String, Value>) {
        let key = self.key_of(&record);
        self.events.push(Event { ts, key, record: Some(record) });
    }

    pub fn delete(&mut self, ts: DateTime<Utc>, key: IndexMap<String, Value>) {
        let key = self.key_of(&key);
        self.events.push(Event { ts, key, record: None });
    }

    /// The latest event per key among those in `[since, until)`, in first-seen key order.
    fn consolidated(&self, since: Option<DateTime<Utc>>, until: DateTime<Utc>) -> Vec<&Event> {
        let in_range = self.events.iter().filter(|e| e.ts < until && since.is_none_or(|s| e.ts >= s));
        if self.repeats_keys {
            return in_range.collect();
        }
        let mut latest: IndexMap<&str, &Event> = IndexMap::new();
        for e in in_range {
            latest.insert(&e.key, e);
        }
        latest.into_values().collect()
    }

    /// The rows of a snapshot at `at`, or of an incremental query, as TSV lines without
    /// header, in key order of first appearance.
    pub fn lines(&self, since: Option<DateTime<Utc>>, until: DateTime<Utc>) -> Vec<String> {
        let (keys, values) = columns(self.schema());
        let incremental = since.is_some();
        self.consolidated(since, until)
            .into_iter()
            .filter(|e| incremental || e.record.is_some())
            .map(|e| {
                let mut fields = vec![format_ts(&e.ts)];
                if incremental {
                    fields.push(if e.record.is_some() { "U" } else { "D" }.into());
                }
                match &e.record {
                    Some(r) => {
                        for c in keys.iter().chain(&values) {
                            fields.push(r.get(c).map(tsv_field).unwrap_or_else(|| "\\N".into()));
                        }
                    }
                    None => {
                        fields.push(e.key.clone());
                        fields.extend(values.iter().map(|_| "\\N".to_owned()));
                    }
                }
                fields.join("\t")
            })
            .collect()
    }

    /// The objects of a query, each as TSV text with its header, handed to `emit` one at a
    /// time. `damage` (`MalformedRow`, `EmptyLine`) spoils the first object.
    pub fn write_objects(
        &self,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        per_object: usize,
        damage: Option<&crate::FaultKind>,
        mut emit: impl FnMut(String),
    ) {
        let incremental = since.is_some();
        let header = self.header(incremental);
        let mut text = String::new();
        let mut in_object = 0;
        let mut emitted = 0;
        let mut push = |line: &str, text: &mut String| {
            if in_object == 0 {
                text.push_str(&header);
                text.push('\n');
            }
            if damage == Some(&crate::FaultKind::EmptyLine) && emitted == 1 {
                text.push('\n');
            }
            if damage == Some(&crate::FaultKind::MalformedRow) && emitted == 0 {
                text.push_str(line.rsplit_once('\t').map_or(line, |(head, _)| head));
            } else {
                text.push_str(line);
            }
            text.push('\n');
            in_object += 1;
            emitted += 1;
            if in_object == per_object {
                emit(std::mem::take(text));
                in_object = 0;
            }
        };
        match self.generated {
            Some(g) => {
                let mut line = String::with_capacity(512);
                let ts = format_ts(&until);
                for i in 0..g.rows {
                    if incremental && !i.is_multiple_of(g.change_every) {
                        continue;
                    }
                    line.clear();
                    line.push_str(&ts);
                    line.push('\t');
                    if incremental {
                        line.push_str("U\t");
                    }
                    crate::bench::write_row(i, if incremental { g.revision } else { 0 }, &mut line);
                    push(&line, &mut text);
                }
            }
            None => {
                for line in self.lines(since, until) {
                    push(&line, &mut text);
                }
            }
        }
        if in_object > 0 || emitted == 0 {
            if emitted == 0 {
                text.push_str(&header);
                text.push('\n');
            }
            emit(text);
        }
    }

    /// The objects of a query as JSON Lines (`{"meta", "key", "value"}`, nulls left out,
    /// deletes without `value`), handed to `emit` one at a time.
    pub fn write_jsonl(
        &self,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        per_object: usize,
        mut emit: impl FnMut(String),
    ) {
        let (keys, values) = columns(self.schema());
        let incremental = since.is_some();
        let events: Vec<&Event> =
            self.consolidated(since, until).into_iter().filter(|e| incremental || e.record.is_some()).collect();
        if events.is_empty() {
            emit(String::new());
        }
        for chunk in events.chunks(per_object.max(1)) {
            let mut text = String::new();
            for e in chunk {
                let mut meta = serde_json::Map::new();
                meta.insert("ts".into(), Value::String(format_ts(&e.ts)));
                if incremental {
                    meta.insert("action".into(), Value::String(if e.record.is_some() { "U" } else { "D" }.into()));
                }
                let mut line = serde_json::Map::new();
                line.insert("meta".into(), Value::Object(meta));
                let pick = |names: &[String], r: &IndexMap<String, Value>| -> Value {
                    Value::Object(
                        names
                            .iter()
                            .filter_map(|n| r.get(n).filter(|v| !v.is_null()).map(|v| (n.clone(), v.clone())))
                            .collect(),
                    )
                };
                match &e.record {
                    Some(r) => {
                        line.insert("key".into(), pick(&keys, r));
                        line.insert("value".into(), pick(&values, r));
                    }
                    None => {
                        let key: Vec<&str> = e.key.split('\t').collect();
                        let key = keys
                            .iter()
                            .zip(key)
                            .map(|(k, v)| (k.clone(), serde_json::from_str(v).unwrap_or(Value::String(v.into()))));
                        line.insert("key".into(), Value::Object(key.collect()));
                    }
                }
                text.push_str(&Value::Object(line).to_string());
                text.push('\n');
            }
            emit(text);
        }
    }

    pub fn header(&self, incremental: bool) -> String {
        let (keys, values) = columns(self.schema());
        let mut h = vec!["meta.ts".to_owned()];
        if incremental {
            h.push("meta.action".into());
        }
        h.extend(keys.iter().map(|k| format!("key.{k}")));
        h.extend(values.iter().map(|v| format!("value.{v}")));
        h.join("\t")
    }
}

pub fn format_ts(ts: &DateTime<Utc>) -> String {
    if ts.timestamp_subsec_micros() == 0 {
        ts.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

/// A JSON value as a DAP TSV field: `\N` for null, JSON text for objects and arrays, and
/// PostgreSQL COPY escapes for backslash, tab, newline and carriage return.
pub fn tsv_field(v: &Value) -> String {
    let raw = match v {
        Value::Null => return "\\N".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

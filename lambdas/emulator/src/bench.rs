//! A generated table for benchmarks: any number of rows of 16 mixed-type columns, made
//! on demand from the row number, so neither side holds the table in memory.

use serde_json::{Value, json};

pub const NAMESPACE: &str = "canvas";
pub const TABLE: &str = "bench_rows";

/// The table's schema: the key and 15 values of the common DAP types.
pub fn schema() -> Value {
    crate::table_schema(
        json!({
            "name": {"type": "string", "maxLength": 255},
            "uuid": {"type": "string", "format": "uuid"},
            "workflow_state": {"type": "string", "enum": ["active", "deleted", "suspended"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "score": {"type": "number"},
            "amount": {"type": "number", "exclusiveMinimum": -1000000, "exclusiveMaximum": 1000000, "multipleOf": 0.01},
            "small": {"type": "integer", "format": "int16"},
            "quota": {"type": "integer", "format": "int32"},
            "is_root": {"type": "boolean"},
            "settings": {"type": "object", "properties": {"lang": {"type": "string"}, "n": {"type": "integer"}}, "additionalProperties": false},
            "sis_ids": {"type": "array", "items": {"type": "string"}},
            "birth_date": {"type": "string", "format": "date"},
            "note": {"type": "string"},
            "parent_id": {"type": "integer", "format": "int64"}
        }),
        &["name", "workflow_state"],
    )
}

/// The TSV header fields after `meta.*`.
pub const FIELDS: [&str; 16] = [
    "key.id",
    "value.name",
    "value.uuid",
    "value.workflow_state",
    "value.created_at",
    "value.updated_at",
    "value.score",
    "value.amount",
    "value.small",
    "value.quota",
    "value.is_root",
    "value.settings",
    "value.sis_ids",
    "value.birth_date",
    "value.note",
    "value.parent_id",
];

/// Row `i` at `revision` (0 for the snapshot; a sync sees later revisions), as TSV fields
/// without `meta.*`, appended to `out` without a newline.
pub fn write_row(i: u64, revision: u32, out: &mut String) {
    use std::fmt::Write;
    let states = ["active", "deleted", "suspended"];
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(revision);
    let _ = write!(
        out,
        "{i}\tCourse section {i} rev {revision} – ünïcødé\t{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}\t{}\t20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\t2024-05-01T10:00:00Z\t{}\t{}.{:02}\t{}\t{}\t{}\t{{\"lang\":\"en\",\"n\":{}}}\t[\"SIS-{i}\",\"X\\\\\\\\{revision}\"]\t19{:02}-{:02}-{:02}\tline one\\nline\\ttwo {revision}\t{}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        h & 0xfff,
        (h >> 4) & 0xfff,
        h & 0xffff_ffff_ffff,
        states[(h % 3) as usize],
        10 + h % 15,
        1 + h % 12,
        1 + h % 28,
        h % 24,
        h % 60,
        (h >> 8) % 60,
        h % 1_000_000,
        (h % 10_000) as f64 / 7.0,
        (h % 999_999) as i64 - 500_000,
        h % 100,
        (h % 30_000) as i16,
        (h % 2_000_000_000) as i32,
        h.is_multiple_of(2),
        h % 100,
        50 + h % 50,
        1 + h % 12,
        1 + h % 28,
        i / 10,
    );
}

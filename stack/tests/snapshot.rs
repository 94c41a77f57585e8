//! The dev template, byte for byte. A change to the stack shows up here as a diff to review;
//! run with `UPDATE_SNAPSHOTS=1` to accept it.

mod common;

use std::path::PathBuf;

fn render(env: &str) -> String {
    let synthesized = common::synth(env, &[]);
    let mut s = serde_json::to_string_pretty(&synthesized.template.to_json()).unwrap();
    s.push('\n');
    s
}

#[test]
fn dev_template_matches_the_snapshot() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/cd2-dev.template.json");
    let actual = render("dev");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).expect("snapshot missing: run with UPDATE_SNAPSHOTS=1");
    if expected != actual {
        let line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
        panic!(
            "the dev template changed (first difference at line {line}); review it and rerun with UPDATE_SNAPSHOTS=1"
        );
    }
}

#[test]
fn synth_is_deterministic() {
    assert_eq!(render("dev"), render("dev"));
    assert_eq!(render("prod"), render("prod"));
}

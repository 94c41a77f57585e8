//! The README's picture of the workflow is the one synth draws for dev from the typed
//! definition; run with `UPDATE_SNAPSHOTS=1` to refresh it after a change to the workflow.

mod common;

use std::path::PathBuf;

const MARKER: &str = "<!-- The workflow as synthesized: cargo xtask synth writes it to cdk.out/cd2-dev.asl.mmd; stack/tests/readme.rs checks this copy. -->\n```mermaid\n";

#[test]
fn the_readme_shows_the_workflow_synth_draws() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find(MARKER).expect("the README has the workflow diagram block") + MARKER.len();
    let end = start + readme[start..].find("```").expect("the diagram block is closed");
    let drawn = common::synth("dev", &[]).diagram;
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() && readme[start..end] != drawn {
        std::fs::write(&path, format!("{}{drawn}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    assert!(
        readme[start..end] == drawn,
        "the README's workflow diagram is stale: rerun with UPDATE_SNAPSHOTS=1 (cargo test -p cd2-stack --test readme)"
    );
}

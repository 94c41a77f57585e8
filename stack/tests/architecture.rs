//! ARCHITECTURE.md's picture of the workflow is the one synth draws for dev from the typed
//! definition; run with `UPDATE_SNAPSHOTS=1` to refresh it after a change to the workflow.

mod common;

use std::path::PathBuf;

const MARKER: &str = "<!-- The workflow as synthesized: cargo xtask synth writes it to cdk.out/cd2-dev.asl.mmd; stack/tests/architecture.rs checks this copy. -->\n```mermaid\n";

#[test]
fn the_architecture_shows_the_workflow_synth_draws() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../xtask/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(MARKER).expect("ARCHITECTURE.md has the workflow diagram block") + MARKER.len();
    let end = start + doc[start..].find("```").expect("the diagram block is closed");
    let drawn = common::synth("dev", &[]).diagram;
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() && doc[start..end] != drawn {
        std::fs::write(&path, format!("{}{drawn}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    assert!(
        doc[start..end] == drawn,
        "ARCHITECTURE.md's workflow diagram is stale: rerun with UPDATE_SNAPSHOTS=1 (cargo test -p cd2-stack --test architecture)"
    );
}

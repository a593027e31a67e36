//! The checked-in CRDs are what the code generates.

use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds/crds.yaml")
}

#[test]
fn deploy_crds_are_current() {
    let path = checked_in();
    let generated = dbo_api::crds_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write deploy/crds/crds.yaml");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "deploy/crds/crds.yaml is out of date with the CRD types in host/api. Regenerate it with \
         `cargo run -- crd > deploy/crds/crds.yaml` or `UPDATE_CRDS=1 cargo test -p dbo-api`."
    );
}

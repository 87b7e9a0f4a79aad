//! `crds/featureflag.yaml` is what `rollgate crd` prints; regenerate with
//! `cargo run -- crd > crds/featureflag.yaml`.

#[test]
fn committed_crd_matches_the_rust_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/featureflag.yaml"
    ))
    .expect("read crds/featureflag.yaml");
    assert!(
        committed == rollgate_core::crd::crd_yaml(),
        "crds/featureflag.yaml is stale: run `cargo run -- crd > crds/featureflag.yaml`"
    );
}

//! `crds/featureflag.yaml` and `crds/segment.yaml` are what `rollgate crd` prints; regenerate
//! with `make crd`.

#[test]
fn committed_crds_match_the_rust_types() {
    for (file, generated) in [
        ("featureflag", rollgate_core::crd::crd_yaml()),
        ("segment", rollgate_core::segment::crd_yaml()),
    ] {
        let path = format!("{}/crds/{file}.yaml", env!("CARGO_MANIFEST_DIR"));
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {path}: {error}"));
        assert!(
            committed == generated,
            "crds/{file}.yaml is stale: run `make crd` \
             (`cargo run -- crd --kind {file} > crds/{file}.yaml`)"
        );
    }
}

#[test]
fn rollgate_crd_prints_both_committed_crds() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .arg("crd")
        .output()
        .expect("run rollgate crd");
    assert!(output.status.success());
    let root = env!("CARGO_MANIFEST_DIR");
    let committed = format!(
        "{}---\n{}",
        std::fs::read_to_string(format!("{root}/crds/featureflag.yaml")).unwrap(),
        std::fs::read_to_string(format!("{root}/crds/segment.yaml")).unwrap()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), committed);
}

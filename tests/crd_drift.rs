//! `crds/featureflag.yaml` and `crds/segment.yaml` are what `rollgate crd --kind all` prints; regenerate
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

fn rollgate_crd(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .arg("crd")
        .args(args)
        .output()
        .expect("run rollgate crd");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn rollgate_crd_prints_the_committed_crds() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |file: &str| std::fs::read_to_string(format!("{root}/crds/{file}.yaml")).unwrap();
    // The default is the FeatureFlag CRD alone, as `rollgate crd > crds/featureflag.yaml` has
    // always meant; `--kind all` is both, to apply at once.
    assert_eq!(rollgate_crd(&[]), read("featureflag"));
    assert_eq!(rollgate_crd(&["--kind", "segment"]), read("segment"));
    assert_eq!(
        rollgate_crd(&["--kind", "all"]),
        format!("{}---\n{}", read("featureflag"), read("segment"))
    );
}

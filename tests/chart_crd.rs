//! The Helm chart installs the CRD from `charts/rollgate/crds/`; that file must be the
//! committed `crds/featureflag.yaml`, byte for byte. After `make crd`, copy it:
//! `cp crds/featureflag.yaml charts/rollgate/crds/featureflag.yaml`.

#[test]
fn chart_crd_is_the_committed_crd() {
    let root = env!("CARGO_MANIFEST_DIR");
    let committed =
        std::fs::read(format!("{root}/crds/featureflag.yaml")).expect("read crds/featureflag.yaml");
    let chart = std::fs::read(format!("{root}/charts/rollgate/crds/featureflag.yaml"))
        .expect("read charts/rollgate/crds/featureflag.yaml");
    assert!(
        committed == chart,
        "charts/rollgate/crds/featureflag.yaml differs from crds/featureflag.yaml: \
         run `cp crds/featureflag.yaml charts/rollgate/crds/featureflag.yaml`"
    );
}

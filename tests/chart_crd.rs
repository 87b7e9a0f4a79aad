//! The Helm chart installs the CRDs from `charts/rollgate/crds/`; those files must be the
//! committed `crds/*.yaml`, byte for byte. After `make crd`, copy them:
//! `cp crds/*.yaml charts/rollgate/crds/`.

#[test]
fn chart_crds_are_the_committed_crds() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["featureflag.yaml", "segment.yaml"] {
        let committed =
            std::fs::read(format!("{root}/crds/{file}")).expect("read the committed CRD");
        let chart = std::fs::read(format!("{root}/charts/rollgate/crds/{file}"))
            .unwrap_or_else(|error| panic!("read charts/rollgate/crds/{file}: {error}"));
        assert!(
            committed == chart,
            "charts/rollgate/crds/{file} differs from crds/{file}: \
             run `cp crds/{file} charts/rollgate/crds/{file}`"
        );
    }
}

//! `docs/reference.md` is what `rollgate crd --format markdown` prints; regenerate with
//! `make reference`.

#[test]
fn committed_reference_matches_the_crd() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");
    let committed = std::fs::read_to_string(path).expect("read docs/reference.md");
    assert!(
        committed == rollgate::reference::reference_markdown(),
        "docs/reference.md is stale: run `{}` \
         (`cargo run -- crd --format markdown > docs/reference.md`)",
        rollgate::reference::REGENERATE
    );
}

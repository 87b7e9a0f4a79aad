use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// `yaml`: the CRDs to apply (`crds/featureflag.yaml` and `crds/segment.yaml`);
    /// `markdown`: their field reference (`docs/reference.md`).
    #[arg(long, value_enum, default_value_t = CrdFormat::Yaml)]
    format: CrdFormat,
    /// Which CRD to print as YAML: `featureflag` (the default, `crds/featureflag.yaml`, as
    /// before Segments existed), `segment`, or `all`, both as two documents to apply at once.
    #[arg(long, value_enum, default_value_t = CrdKind::Featureflag)]
    kind: CrdKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CrdFormat {
    Yaml,
    Markdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CrdKind {
    All,
    Featureflag,
    Segment,
}

pub fn run(args: &CrdArgs) -> ExitCode {
    let text = match (args.format, args.kind) {
        (CrdFormat::Markdown, _) => crate::reference::reference_markdown(),
        (CrdFormat::Yaml, CrdKind::All) => all_crds_yaml(),
        (CrdFormat::Yaml, CrdKind::Featureflag) => rollgate_core::crd::crd_yaml(),
        (CrdFormat::Yaml, CrdKind::Segment) => rollgate_core::segment::crd_yaml(),
    };
    super::exit::print_then(&text, ExitCode::SUCCESS)
}

/// Both CRDs as one multi-document YAML stream: `crds/featureflag.yaml`, `---`, then
/// `crds/segment.yaml`.
pub fn all_crds_yaml() -> String {
    format!(
        "{}---\n{}",
        rollgate_core::crd::crd_yaml(),
        rollgate_core::segment::crd_yaml()
    )
}

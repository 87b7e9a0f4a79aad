use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// `yaml`: the CRD to apply (`crds/featureflag.yaml`); `markdown`: its field reference
    /// (`docs/reference.md`).
    #[arg(long, value_enum, default_value_t = CrdFormat::Yaml)]
    format: CrdFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CrdFormat {
    Yaml,
    Markdown,
}

pub fn run(args: &CrdArgs) -> ExitCode {
    let text = match args.format {
        CrdFormat::Yaml => rollgate_core::crd::crd_yaml(),
        CrdFormat::Markdown => crate::reference::reference_markdown(),
    };
    super::exit::print_then(&text, ExitCode::SUCCESS)
}

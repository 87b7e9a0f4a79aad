use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::manifest::{ManifestDocument, load_file};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// FeatureFlag manifests (YAML or JSON; multi-document YAML is fine).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Prints `file: kind/name: field.path: message` for every violation; exit 2 on any.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let mut failed = false;
    let mut flags = 0usize;
    for path in &args.files {
        let file = match load_file(path) {
            Ok(file) => file,
            Err(error) => {
                eprintln!("{error}");
                failed = true;
                continue;
            }
        };
        for line in file.violation_lines() {
            eprintln!("{line}");
            failed = true;
        }
        for document in &file.documents {
            match document {
                ManifestDocument::Other { .. } => {
                    eprintln!(
                        "{}: {document}: not a FeatureFlag, not checked",
                        path.display()
                    )
                }
                _ => flags += 1,
            }
        }
    }
    if failed {
        ExitCode::from(super::exit::EXIT_BAD_INPUT)
    } else {
        let summary = format!(
            "{flags} FeatureFlag(s) valid in {} file(s)\n",
            args.files.len()
        );
        super::exit::print_then(&summary, ExitCode::SUCCESS)
    }
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::manifest::{ManifestDocument, ManifestFile, load_file};
use rollgate_core::validate::segment_references;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// FeatureFlag and Segment manifests (YAML or JSON; multi-document YAML is fine). Given
    /// any Segment, every segment a flag's rules name must be among those given.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Prints `file: kind/name: field.path: message` for every violation; exit 2 on any.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let mut failed = false;
    let mut files = Vec::new();
    for path in &args.files {
        match load_file(path) {
            Ok(file) => files.push(file),
            Err(error) => {
                eprintln!("{error}");
                failed = true;
            }
        }
    }
    let (mut flags, mut segments) = (0usize, 0usize);
    for file in &files {
        for line in file.violation_lines() {
            eprintln!("{line}");
            failed = true;
        }
        for document in &file.documents {
            match document {
                ManifestDocument::Other { .. } => eprintln!(
                    "{}: {document}: not a FeatureFlag or Segment, not checked",
                    file.path.display()
                ),
                ManifestDocument::Segment { .. } => segments += 1,
                ManifestDocument::Malformed { kind, .. } if *kind == "Segment" => segments += 1,
                _ => flags += 1,
            }
        }
    }
    for line in unknown_segment_lines(&files) {
        eprintln!("{line}");
        failed = true;
    }
    if failed {
        ExitCode::from(super::exit::EXIT_BAD_INPUT)
    } else {
        let summary = format!(
            "{flags} FeatureFlag(s) and {segments} Segment(s) valid in {} file(s)\n",
            args.files.len()
        );
        super::exit::print_then(&summary, ExitCode::SUCCESS)
    }
}

/// With Segments among the files, each `InSegment` of a flag must name one of them (of the
/// flag's namespace, where both say one). Without any, flags are checked alone.
fn unknown_segment_lines(files: &[ManifestFile]) -> Vec<String> {
    let given: Vec<(Option<&str>, &str)> = files
        .iter()
        .flat_map(|file| &file.documents)
        .filter_map(|document| match document {
            ManifestDocument::Segment { segment, .. } => Some((
                segment.metadata.namespace.as_deref(),
                segment.metadata.name.as_deref()?,
            )),
            _ => None,
        })
        .collect();
    if given.is_empty() {
        return Vec::new();
    }
    let mut lines = Vec::new();
    for file in files {
        for flag in file.valid_flags() {
            let namespace = flag.metadata.namespace.as_deref();
            let exists = |name: &str| {
                given.iter().any(|(segment_namespace, segment)| {
                    *segment == name
                        && (namespace.is_none()
                            || segment_namespace.is_none()
                            || *segment_namespace == namespace)
                })
            };
            for violation in segment_references(flag, exists) {
                lines.push(format!(
                    "{}: FeatureFlag/{}: {violation}",
                    file.path.display(),
                    flag.metadata.name.as_deref().unwrap_or("<unnamed>")
                ));
            }
        }
    }
    lines
}

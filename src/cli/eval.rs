use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rollgate_sdk::{FlagDocument, FlagSet, rollout_rank};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A flag document (`flags.json`, as the operator publishes it).
    #[arg(long = "flags", value_name = "FILE")]
    flags: PathBuf,
    /// The flag key.
    #[arg(long)]
    key: String,
    /// The user id; without it only allow-all (100%) flags are on.
    #[arg(long)]
    user: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EvalArgs) -> ExitCode {
    let bytes = match std::fs::read(&args.flags) {
        Ok(bytes) => bytes,
        Err(error) => {
            return super::exit::bad_input(format!(
                "{}: cannot read file: {error}",
                args.flags.display()
            ));
        }
    };
    let document = match FlagDocument::from_json(&bytes) {
        Ok(document) => document,
        Err(error) => return super::exit::bad_input(format!("{}: {error}", args.flags.display())),
    };
    let flags = FlagSet::from_document(&document);
    let user = args.user.as_deref();
    let evaluation = flags.evaluate(&args.key, user);
    // The rank is shown whenever there is a user, even when another rule decided.
    let rank = user.map(|user| rollout_rank(&args.key, user));
    if args.json {
        let object = serde_json::json!({
            "key": args.key,
            "user": user,
            "enabled": evaluation.enabled,
            "rank": rank,
            "reason": evaluation.reason.as_str(),
            "variant": evaluation.variant,
        });
        super::exit::print_then(&format!("{object}\n"), ExitCode::SUCCESS)
    } else {
        let verdict = if evaluation.enabled { "on" } else { "off" };
        let rank = rank.map_or_else(|| "-".to_string(), |rank| format!("{rank}/10000"));
        let mut line = format!(
            "{verdict:<3}  key={} user={} rank={rank} reason={}",
            args.key,
            user.unwrap_or("-"),
            evaluation.reason
        );
        if let Some(variant) = evaluation.variant {
            line.push_str(&format!(" variant={variant}"));
        }
        line.push('\n');
        super::exit::print_then(&line, ExitCode::SUCCESS)
    }
}

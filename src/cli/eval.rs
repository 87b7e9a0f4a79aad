use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rollgate_sdk::{AttributeValue, Context, FlagDocument, FlagSet, rollout_rank};

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
    /// An attribute for targeting rules, repeatable: `NAME=TEXT` is a string;
    /// `NAME:=JSON` is a number, a boolean or a list of strings (`age:=42`, `beta:=true`,
    /// `groups:='["a","b"]'`).
    #[arg(long = "context", value_name = "NAME=VALUE", value_parser = parse_attribute)]
    context: Vec<(String, AttributeValue)>,
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
    let mut context = Context::from(user);
    for (name, value) in &args.context {
        context.set(name, value.clone());
    }
    let evaluation = flags.evaluate_with(&args.key, &context);
    // The rank is shown whenever there is a user, even when another rule decided.
    let rank = user.map(|user| rollout_rank(&args.key, user));
    if args.json {
        let object = serde_json::json!({
            "key": args.key,
            "user": user,
            "enabled": evaluation.enabled,
            "rank": rank,
            "reason": evaluation.reason.as_str(),
            "rule": evaluation.rule,
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
        if let Some(rule) = evaluation.rule {
            line.push_str(&format!(" rule={rule}"));
        }
        if let Some(variant) = evaluation.variant {
            line.push_str(&format!(" variant={variant}"));
        }
        line.push('\n');
        super::exit::print_then(&line, ExitCode::SUCCESS)
    }
}

/// One `--context` argument: `NAME=TEXT` (a string, taken as is) or `NAME:=JSON` (typed).
fn parse_attribute(argument: &str) -> Result<(String, AttributeValue), String> {
    let Some((name, value)) = argument.split_once('=') else {
        return Err(format!(
            "{argument:?} is not NAME=VALUE (or NAME:=JSON for a number, boolean or list)"
        ));
    };
    if let Some(name) = name.strip_suffix(':') {
        check_attribute_name(name, argument)?;
        let typed = match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Bool(flag)) => AttributeValue::Bool(flag),
            Ok(serde_json::Value::Number(number)) => match number.as_f64() {
                Some(number) => AttributeValue::Number(number),
                None => return Err(format!("{name}: {value} is not a finite number")),
            },
            Ok(serde_json::Value::Array(items)) => {
                let strings: Option<Vec<String>> = items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::String(text) => Some(text),
                        _ => None,
                    })
                    .collect();
                match strings {
                    Some(strings) => AttributeValue::List(strings),
                    None => return Err(format!("{name}: a list may hold only strings: {value}")),
                }
            }
            Ok(serde_json::Value::String(text)) => AttributeValue::String(text),
            Ok(other) => {
                return Err(format!(
                    "{name}: {other} is not a number, boolean, string or list of strings"
                ));
            }
            Err(error) => return Err(format!("{name}: {value:?} is not JSON: {error}")),
        };
        return Ok((name.to_string(), typed));
    }
    check_attribute_name(name, argument)?;
    Ok((name.to_string(), AttributeValue::String(value.to_string())))
}

fn check_attribute_name(name: &str, argument: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{argument:?} has no attribute name before '='"));
    }
    Ok(())
}

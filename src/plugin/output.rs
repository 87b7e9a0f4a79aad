//! What a command prints: text, or the value as JSON or YAML for `-o json|yaml`.

use super::args::OutputFormat;
use super::error::PluginError;
use super::render;

/// Prints text to stdout, or the value as JSON/YAML for `-o json|yaml`.
pub fn print_output(
    format: Option<OutputFormat>,
    text: impl FnOnce() -> String,
    value: impl FnOnce() -> serde_json::Value,
) -> Result<(), PluginError> {
    let rendered = render_output(format, text, value)?;
    // A reader that went away has nothing left to read; the command still succeeds.
    let _printed = crate::output::print(&rendered).map_err(PluginError::Stdout)?;
    Ok(())
}

/// Text, or the value as JSON/YAML for `-o json|yaml`.
pub fn render_output(
    format: Option<OutputFormat>,
    text: impl FnOnce() -> String,
    value: impl FnOnce() -> serde_json::Value,
) -> Result<String, PluginError> {
    Ok(match format {
        Some(OutputFormat::Json) => render::to_json(&value()).map_err(PluginError::Output)?,
        Some(OutputFormat::Yaml) => render::to_yaml(&value()).map_err(PluginError::Output)?,
        Some(OutputFormat::Wide) | None => text(),
    })
}

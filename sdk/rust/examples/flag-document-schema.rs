//! Prints the flag document's JSON Schema, pretty and with a trailing newline: `make schema`
//! writes it to `sdk/flag-document.schema.json`, and `tests/flag_document_schema.rs` checks that
//! the committed file is this text.

fn main() {
    println!("{:#}", rollgate_sdk::document::json_schema());
}

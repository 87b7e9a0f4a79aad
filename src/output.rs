//! Standard output for the command-line tools. A reader that went away (`| head`) is not an
//! error: output stops quietly and the command keeps its exit code. Any other write failure
//! (a full disk behind `>`) is reported, never panicked on like `println!` does.

use std::io::{self, Write};

/// What became of a write to standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Printed {
    /// Everything was written and flushed.
    Written,
    /// The reader closed the pipe; nothing more will be read, so stop producing output.
    ReaderGone,
}

/// Writes `text` to standard output and flushes it.
pub fn print(text: &str) -> io::Result<Printed> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(Printed::Written),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(Printed::ReaderGone),
        Err(error) => Err(error),
    }
}

//! The CLI's error: one line with its cause chain, and the exit code it maps to.

use std::fmt;

/// A failure to report on stderr and exit with.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// `context: error: its source: …`, all on one line.
    pub(crate) fn with(context: impl fmt::Display, error: &dyn std::error::Error) -> Self {
        Self::chain(format!("{context}: {error}"), error)
    }

    /// `error: its source: …`, for errors that already name what they are about.
    pub(crate) fn from_error(error: &dyn std::error::Error) -> Self {
        Self::chain(error.to_string(), error)
    }

    fn chain(mut message: String, error: &dyn std::error::Error) -> Self {
        let mut source = error.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            // Many errors already repeat their source in their own message.
            if !message.contains(&cause_text) {
                message.push_str(": ");
                message.push_str(&cause_text);
            }
            source = cause.source();
        }
        Self { message }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Error messages from the OS and from libraries must stay on one line, and they may
        // quote names a torrent chose.
        f.write_str(&crate::escape::escape(&self.message.replace('\n', " ")))
    }
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;

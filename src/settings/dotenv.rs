//! The `.env` file: read from the working directory only, checked whole before anything is
//! loaded, and never quoted in an error (it holds secrets).

use std::path::PathBuf;

/// Why the `.env` file could not be loaded. Never quotes the file's text: it holds secrets.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    /// A line that is not `KEY=VALUE` (or a comment, or blank).
    #[error("{path}: line {line} is not KEY=VALUE (nothing was loaded from the file)")]
    Line {
        /// The `.env` file's path.
        path: String,
        /// The bad line's number, from 1; 0 when it could not be located.
        line: usize,
    },
    /// A quote (`"` or `'`) opened on this line is never closed: dotenvy reads a quoted
    /// value across lines, so it ran to the end of the file.
    #[error(
        "{path}: line {line} opens a quote that is never closed (nothing was loaded from the file)"
    )]
    UnclosedQuote {
        /// The `.env` file's path.
        path: String,
        /// The number of the line the quote opens on, from 1; 0 when it could not be located.
        line: usize,
    },
    /// The file exists but cannot be read.
    #[error("{path}: cannot be read: {source}")]
    Io {
        /// The `.env` file's path.
        path: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
}

/// Loads `./.env` (only from the working directory, never a parent) into the process
/// environment when it exists; variables already set win. Returns the file loaded. The whole
/// file is checked first: a malformed line stops the service with its line number, instead of
/// silently dropping every line after it.
pub fn load_dotenv() -> Result<Option<PathBuf>, DotenvError> {
    let Some(path) = std::env::current_dir().ok().map(|d| d.join(".env")) else {
        return Ok(None);
    };
    if !path.is_file() {
        return Ok(None);
    }
    let shown = path.display().to_string();
    let io = |source| DotenvError::Io {
        path: shown.clone(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(io)?;
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(_) => {}
            Err(dotenvy::Error::LineParse(bad, at)) => {
                let line = text
                    .lines()
                    .position(|l| {
                        // A blank line is a prefix of anything: never the culprit.
                        !l.trim().is_empty()
                            && (bad.starts_with(l.trim_end()) || l.contains(bad.trim()))
                    })
                    .map_or(0, |i| i + 1);
                // A quoted value may span lines, so an open quote is read to the end of the
                // file, and dotenvy reports the error at the very end of what it read.
                let unclosed = at == bad.len() && bad.contains(['"', '\'']);
                return Err(if unclosed {
                    DotenvError::UnclosedQuote { path: shown, line }
                } else {
                    DotenvError::Line { path: shown, line }
                });
            }
            Err(dotenvy::Error::Io(source)) => return Err(io(source)),
            Err(_) => {
                return Err(DotenvError::Line {
                    path: shown,
                    line: 0,
                })
            }
        }
    }
    dotenvy::from_read(text.as_bytes()).map_err(|_| DotenvError::Line {
        path: shown,
        line: 0,
    })?;
    Ok(Some(path))
}

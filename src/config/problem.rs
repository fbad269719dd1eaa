//! A configuration problem as `fjord check` and start-up print it:
//! `file:line:column: key: message`, one line each.

use std::fmt;

use super::source::{ConfigSource, KeyPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// Worth knowing, but the configuration works (an unreachable broker may come up).
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// The key the problem is about (`proxy.listen`), when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl Problem {
    /// An error about `path`, located where `path` (or its section) is written.
    pub fn at(source: &ConfigSource, path: &KeyPath, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            file: source.file.clone(),
            position: source.position_of(path),
            key: Some(path.to_string()).filter(|key| !key.is_empty()),
            message: one_line(&message.into()),
        }
    }

    /// The same problem as a warning.
    pub fn warning(self) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..self
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `text` on one line: a problem is one line of output, whatever its source wrote.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        if self.severity == Severity::Warning {
            f.write_str(": warning")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The errors that stop a configuration from being used, one per line.
#[derive(Debug, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

//! Configuration errors: what is wrong, and the file, line and key where it is.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where a configuration value was written: file, line, column and key.
///
/// Displayed as `file:line:column: key`, the parts that are unknown left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file, as it was named (the config file, or the legacy ini it refers to).
    pub file: PathBuf,
    /// The line, counted from 1. `None` for a problem with the whole file.
    pub line: Option<usize>,
    /// The column in characters, counted from 1, when known (TOML only).
    pub column: Option<usize>,
    /// The key, as a TOML path (`pbx.url`, `plugin.memory_mb`) or as the ini names it
    /// (`[WEBHOOKS] WEBHOOK_URL`).
    pub key: Option<String>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        Ok(())
    }
}

/// What is wrong with a configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The file is not valid TOML or ini.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A key the schema does not know (often a typo).
    #[error("unknown key; expected {expected}")]
    UnknownKey {
        /// The keys allowed here.
        expected: String,
    },
    /// A value of the wrong type, e.g. a string where a number belongs.
    #[error("wrong type: {0}")]
    WrongType(String),
    /// A required key is absent.
    #[error("missing required key; expected {expected}")]
    Missing {
        /// What to write.
        expected: String,
    },
    /// A value of the right type that is not acceptable.
    #[error("expected {expected}, found {found}")]
    Invalid {
        /// What would be accepted.
        expected: String,
        /// The value as written (secrets are never shown).
        found: String,
    },
    /// A name defined twice.
    #[error("duplicate {what} {name:?}, already defined at {first}")]
    Duplicate {
        /// What kind of name (`plugin name`, `setting`, ...).
        what: &'static str,
        /// The name.
        name: String,
        /// Where it was first defined.
        first: String,
    },
    /// A route or `default_plugins` names a plugin that is not configured.
    #[error("unknown plugin {name:?}; expected one of the configured plugins: {known}")]
    UnknownPlugin {
        /// The name as written.
        name: String,
        /// The configured plugins.
        known: String,
    },
    /// An `env:NAME` reference to an environment variable that is not set.
    #[error("the environment variable {var} is not set; expected it to hold {what}")]
    EnvNotSet {
        /// The variable.
        var: String,
        /// What the value is for.
        what: String,
    },
    /// A file that cannot be read, or is not what it should be.
    #[error("cannot use {path}: {reason}")]
    File {
        /// The path as resolved.
        path: PathBuf,
        /// Why (the OS error, or what is wrong with the content).
        reason: String,
    },
}

/// One problem in the configuration, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {kind}")]
pub struct ConfigError {
    /// Where it is.
    pub place: Place,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// Every problem found in a configuration (never empty), one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never, for an error returned by this module).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(
            f,
            "{count} configuration error{}:",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            writeln!(f, "  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A position inside one of the loaded files, before it is turned into a [`Place`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Pos {
    /// Unknown: the whole file.
    #[default]
    File,
    /// A byte range of a TOML file.
    Span(Range<usize>),
    /// A line of an ini file.
    Line(usize),
}

/// Where a raw value came from: which loaded file, where in it, and for ini values the key as
/// the ini spells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct At {
    /// Index into [`Sources`].
    pub file: usize,
    pub pos: Pos,
    /// `[SECTION] KEY` for a value from an ini file; it replaces the TOML key in messages.
    pub ini_key: Option<String>,
}

/// A problem before it is placed: the key is the TOML path the validator was looking at.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub at: At,
    pub key: Option<String>,
    pub kind: ErrorKind,
}

impl Problem {
    pub fn new(at: &At, key: impl Into<String>, kind: ErrorKind) -> Self {
        Problem {
            at: at.clone(),
            key: Some(key.into()),
            kind,
        }
    }
}

/// The files one configuration was read from, to turn byte offsets into lines.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    files: Vec<(PathBuf, String)>,
}

impl Sources {
    /// Adds a file and returns its index.
    pub fn add(&mut self, path: &Path, text: String) -> usize {
        self.files.push((path.to_path_buf(), text));
        self.files.len() - 1
    }

    pub fn path(&self, file: usize) -> &Path {
        &self.files[file].0
    }

    pub fn text(&self, file: usize) -> &str {
        &self.files[file].1
    }

    /// The directory relative paths written in `file` are resolved against.
    pub fn dir(&self, file: usize) -> PathBuf {
        match self.path(file).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Line and column (from 1) of a byte offset.
    pub fn line_col(&self, file: usize, offset: usize) -> (usize, usize) {
        let text = self.text(file);
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, column)
    }

    /// The line of a position, for "already defined at" notes.
    pub fn describe(&self, at: &At) -> String {
        let place = self.place(at, None);
        match place.line {
            Some(line) => format!("{}:{line}", place.file.display()),
            None => place.file.display().to_string(),
        }
    }

    pub fn place(&self, at: &At, key: Option<String>) -> Place {
        let (line, column) = match &at.pos {
            Pos::File => (None, None),
            Pos::Span(span) => {
                let (line, column) = self.line_col(at.file, span.start);
                (Some(line), Some(column))
            }
            Pos::Line(line) => (Some(*line), None),
        };
        Place {
            file: self.path(at.file).to_path_buf(),
            line,
            column,
            key: at.ini_key.clone().or(key),
        }
    }

    pub fn error(&self, problem: Problem) -> ConfigError {
        ConfigError {
            place: self.place(&problem.at, problem.key),
            kind: problem.kind,
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

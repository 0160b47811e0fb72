//! [`Secret`]: a value that must never be shown, from the configuration (the PBX client
//! secret, plugins' secrets) to the wire (access tokens).

use std::fmt;
use std::sync::Arc;

/// A string that must never be shown: a client secret, an access token, a plugin's secret.
///
/// `Display`-free by design, and `Debug` redacts: the value is reachable only through
/// [`Secret::expose`], so that every place that reveals it is easy to find.
///
/// ```
/// # use callhook::secret::Secret;
/// let secret = Secret::from("hunter2");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted])");
/// assert_eq!(secret.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for putting it on the wire or handing it to a plugin. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value.into())
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.into())
    }
}

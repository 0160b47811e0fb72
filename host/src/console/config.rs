//! The console's configuration, `[admin]`: the one source of its defaults.

use crate::secret::Secret;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Where the console listens unless `[admin] listen` says otherwise: this machine only.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081));

/// The operator console's listener and who may use it.
///
/// ```
/// # use callhook::console::ConsoleConfig;
/// let config = ConsoleConfig::default();
/// assert_eq!(config.listen.to_string(), "127.0.0.1:8081");
/// assert!(config.token.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleConfig {
    /// The address and port of the console's own listener, never the public server's. By
    /// default [`DEFAULT_LISTEN`].
    pub listen: SocketAddr,
    /// The token a request must carry (bearer header or the login form's cookie). Without one,
    /// the validator allows loopback addresses only, so the console is this machine's alone.
    /// By default none.
    pub token: Option<Secret>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: DEFAULT_LISTEN,
            token: None,
        }
    }
}

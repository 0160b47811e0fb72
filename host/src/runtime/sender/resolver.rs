//! The name lookup the sender uses: a trait, so tests can answer what they like.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;

/// What a [`Resolver`] answers: the addresses of a name.
pub type Resolution<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Looks up the addresses of a host name.
///
/// The sender asks once per new connection and connects only to an address it checked from
/// that very answer, so a name cannot pass the check and then point elsewhere.
pub trait Resolver: fmt::Debug + Send + Sync + 'static {
    /// The addresses of `host` (a DNS name, never an IP literal), for a connection to `port`.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolution<'a>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolution<'a> {
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host, port)).await?;
            Ok(addresses.map(|a| a.ip()).collect())
        })
    }
}

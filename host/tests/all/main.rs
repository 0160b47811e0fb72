//! Integration tests of the host, compiled as one binary.

mod plugins;
mod sandbox;
mod support;

//! Integration tests of the host, compiled as one binary.

mod chaos;
mod cli;
mod console;
mod package;
mod pbx;
mod pipeline;
mod plugins;
mod reload;
mod sandbox;
mod scenarios;
mod server;
mod support;

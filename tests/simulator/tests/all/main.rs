//! The simulator's integration tests, one binary: real HTTP(S) and WebSocket on 127.0.0.1.

mod callcontrol;
mod faults;
mod load;
mod scenarios;
mod socket;
mod support;
mod tls;
mod token;
mod variants;
mod xapi;

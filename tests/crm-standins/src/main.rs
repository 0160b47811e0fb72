//! `callhook-crm-standins <crm> [--port N]`: runs one stand-in until Ctrl-C.
fn main() {}

//! Which of the PBX's two APIs this API client may use: Call Control and XAPI.
//!
//! 3CX grants them separately (`3cx-api.md`, sections 2 and 5): Call Control needs the licence
//! and the client's Call Control option, XAPI needs XAPI access and a department role. A client
//! missing either gets `403`, and the two must be told apart, because the fix is a different
//! tick in the admin console. [`probe`] asks each once, with the shared token.

use super::rest::{RestClient, RestError};

/// What the PBX answered each API.
#[derive(Debug)]
pub struct ApiAccess {
    /// `GET /callcontrol`: the number of DNs the client sees, or why not.
    pub call_control: Result<usize, RestError>,
    /// `GET /xapi/v1/InboundRules`: the number of inbound rules, or why not.
    pub xapi: Result<usize, RestError>,
}

impl ApiAccess {
    /// One line per API: `ok  ...` or `missing  ...` with the PBX's reason.
    pub fn lines(&self) -> [String; 2] {
        let line = |api: &str, result: &Result<usize, RestError>, what: &str| match result {
            Ok(count) => format!("ok  {api}: {count} {what}"),
            Err(error) => format!("missing  {api}: {error}"),
        };
        [
            line("Call Control", &self.call_control, "DNs visible"),
            line("XAPI", &self.xapi, "inbound rules"),
        ]
    }

    /// Whether both APIs answered.
    pub fn complete(&self) -> bool {
        self.call_control.is_ok() && self.xapi.is_ok()
    }
}

/// Asks Call Control and XAPI once each. A failure to log in at all is returned as the error
/// of both (it names the credentials).
pub async fn probe(rest: &RestClient) -> ApiAccess {
    ApiAccess {
        call_control: rest.snapshot().await.map(|snapshot| snapshot.dns.len()),
        xapi: rest.inbound_rules().await.map(|rules| rules.len()),
    }
}

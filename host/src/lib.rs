//! callhook: watches a 3CX phone system, derives call events and delivers them to sandboxed
//! WebAssembly plugins.
//!
//! Data flows one way: 3CX → [`pbx`] (raw participants) → [`calls`] (the pure call state
//! machine) → durable queue → [`runtime`] (one fresh sandboxed plugin instance per delivery)
//! → CRM.

pub mod calls;
// The connector's modules join once they build; until then only the participant type.
pub mod pbx {
    //! The 3CX connector.
    pub mod participant;
}
pub mod runtime;

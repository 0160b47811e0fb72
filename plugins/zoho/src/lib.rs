//! `zoho`: logs 3CX calls in Zoho CRM (`shared/spec/crm-plugins.md`).
//!
//! Being written: until it is, every delivery fails permanently, so nothing is lost.

use callhook_plugin_sdk::{self as sdk, DeliveryError, Plugin};

/// The plugin, configured for one delivery.
pub struct Crm;

impl Plugin for Crm {
    fn new() -> Result<Self, DeliveryError> {
        Err(DeliveryError::permanent("zoho: not built yet"))
    }
}

sdk::register_plugin!(Crm);

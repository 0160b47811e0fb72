//! `bitrix24`: logs 3CX calls in Bitrix24 (`shared/spec/crm-plugins.md`).
//!
//! Being written: until it is, every delivery fails permanently, so nothing is lost.

use callhook_plugin_sdk::{self as sdk, DeliveryError, Plugin};

/// The plugin, configured for one delivery.
pub struct Crm;

impl Plugin for Crm {
    fn new() -> Result<Self, DeliveryError> {
        Err(DeliveryError::permanent("bitrix24: not built yet"))
    }
}

sdk::register_plugin!(Crm);

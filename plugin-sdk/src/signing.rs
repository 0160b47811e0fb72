//! [Standard Webhooks](https://www.standardwebhooks.com/) signatures.
//!
//! A signing secret looks like `whsec_<base64 key>`. The signature of a message is
//! `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, sent with the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers.
//!
//! ```
//! use callhook_plugin_sdk::signing::SigningKey;
//!
//! let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";

/// A decoded signing key. Its `Debug` output hides the key.
#[derive(Clone)]
pub struct SigningKey {
    key: Vec<u8>,
}

/// Why a signing secret was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// The secret is empty.
    Empty,
    /// The part after `whsec_` is not base64.
    NotBase64,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Empty => f.write_str("the signing secret is empty"),
            SecretError::NotBase64 => {
                f.write_str("the signing secret must be `whsec_` followed by base64")
            }
        }
    }
}

impl std::error::Error for SecretError {}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Decodes a `whsec_...` secret. A secret without the prefix is taken as base64 too.
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        Ok(SigningKey { key })
    }

    /// The `webhook-signature` value for one message.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_malformed_secrets() {
        assert_eq!(SigningKey::from_secret("").unwrap_err(), SecretError::Empty);
        assert_eq!(
            SigningKey::from_secret("whsec_").unwrap_err(),
            SecretError::Empty
        );
        assert_eq!(
            SigningKey::from_secret("whsec_!!").unwrap_err(),
            SecretError::NotBase64
        );
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}

//! Signature helpers: HMAC over raw bytes, compared in constant time, with secret rotation.

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::adapter::VerifyError;

type HmacSha256 = Hmac<Sha256>;

/// A signing secret. Its `Debug` output never shows the value.
///
/// ```
/// use loyaltyd_adapter::Secret;
/// let s = Secret::new("shpss_1234567890");
/// assert_eq!(format!("{s:?}"), "Secret(\"shps…\")");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's bytes, for computing a MAC.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.0.chars().take(4).collect();
        write!(f, "Secret(\"{head}…\")")
    }
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
///
/// ```
/// use loyaltyd_adapter::signature::{hmac_sha256, base64_encode};
/// // Shopify's own known-answer vector.
/// let mac = hmac_sha256(b"test_secret_key", &[br#"{"foo": "bar"}"#]);
/// assert_eq!(base64_encode(&mac), "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=");
/// ```
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = new_mac(key);
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Check a base64 HMAC-SHA256 `header` over the concatenation of `parts`, accepting any
/// of `secrets` (so a secret can be rotated without dropping webhooks). The comparison is
/// constant-time.
///
/// ```
/// use loyaltyd_adapter::{Secret, VerifyError, signature::verify_hmac_sha256_base64};
/// let secrets = [Secret::new("old"), Secret::new("test_secret_key")];
/// let body: &[u8] = br#"{"foo": "bar"}"#;
/// assert!(verify_hmac_sha256_base64(&secrets, &[body], "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=").is_ok());
/// assert_eq!(verify_hmac_sha256_base64(&secrets, &[b"{}"], "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
///            Err(VerifyError::Mismatch));
/// ```
pub fn verify_hmac_sha256_base64(
    secrets: &[Secret],
    parts: &[&[u8]],
    header: &str,
) -> Result<(), VerifyError> {
    let expected = base64::engine::general_purpose::STANDARD
        .decode(header.trim().as_bytes())
        .map_err(|_| VerifyError::Malformed("not base64"))?;
    if expected.len() != 32 {
        return Err(VerifyError::Malformed("not a SHA-256 digest"));
    }
    for secret in secrets {
        let mut mac = new_mac(secret.expose());
        for p in parts {
            mac.update(p);
        }
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_known_answer_vector_matches_url_plus_body() {
        let body = br#"{"data":{"type":"webhooks","id":">id<"}}"#;
        let mac = hmac_sha256(b"signature-key", &[b"https://webhook.site/webhooks", body]);
        assert_eq!(
            base64_encode(&mac),
            "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="
        );
    }

    #[test]
    fn a_signature_that_is_not_base64_is_malformed() {
        let r = verify_hmac_sha256_base64(&[Secret::new("k")], &[b"x"], "%%%");
        assert_eq!(r, Err(VerifyError::Malformed("not base64")));
    }

    #[test]
    fn a_truncated_digest_is_malformed_not_a_panic() {
        let r = verify_hmac_sha256_base64(&[Secret::new("k")], &[b"x"], "AAAA");
        assert_eq!(r, Err(VerifyError::Malformed("not a SHA-256 digest")));
    }

    #[test]
    fn no_secrets_configured_never_verifies() {
        let mac = base64_encode(&hmac_sha256(b"", &[b"x"]));
        assert_eq!(
            verify_hmac_sha256_base64(&[], &[b"x"], &mac),
            Err(VerifyError::Mismatch)
        );
    }
}

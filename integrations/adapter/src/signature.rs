//! Signature helpers: HMAC over raw bytes, compared in constant time, with secret rotation.
//!
//! Senders sign the raw request body (sometimes prefixed by something else, such as
//! Square's notification URL) with HMAC under a shared secret, and put the MAC in a header
//! as base64 or hex. The helpers here cover the common combinations:
//!
//! | Sender | [`Scheme`] | Message |
//! |---|---|---|
//! | Shopify `X-Shopify-Hmac-Sha256` | [`Scheme::HMAC_SHA256_BASE64`] | body |
//! | Square `x-square-hmacsha256-signature` | [`Scheme::HMAC_SHA256_BASE64`] | notification URL + body |
//! | Square legacy `x-square-signature` | [`Scheme::HMAC_SHA1_BASE64`] | notification URL + body |
//! | WooCommerce `X-WC-Webhook-Signature` | [`Scheme::HMAC_SHA256_BASE64`] | body |
//! | many others (hex digests) | [`Scheme::HMAC_SHA256_HEX`] | varies |
//!
//! Every `verify*` function
//! - takes the message as `parts` that are MACed one after the other (no copy is made),
//! - accepts the signature if it matches under **any** of `secrets`, so a secret can be
//!   rotated without dropping webhooks (list the new one and the old one until the sender
//!   has switched),
//! - compares with [`Mac::verify_slice`], which is constant-time,
//! - never verifies with an empty secret: an empty secret in a configuration would let
//!   anyone forge signatures, so it is skipped as if it were not there,
//! - answers [`VerifyError::Malformed`] for a header that is not even the right encoding
//!   or length, and [`VerifyError::Mismatch`] otherwise.
//!
//! Header values are trimmed of surrounding whitespace; any prefix such as `sha256=` is
//! the caller's to strip.

use std::fmt;

use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::Sha256;

use crate::adapter::VerifyError;

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

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

/// The hash function under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// HMAC-SHA256 (32-byte MAC).
    Sha256,
    /// HMAC-SHA1 (20-byte MAC). Only for senders that still use it (Square's legacy
    /// header); HMAC-SHA1 is not broken the way SHA-1 collisions are, but prefer SHA-256.
    Sha1,
}

impl Algorithm {
    /// Length of the MAC in bytes.
    ///
    /// ```
    /// use loyaltyd_adapter::signature::Algorithm;
    /// assert_eq!(Algorithm::Sha256.mac_len(), 32);
    /// assert_eq!(Algorithm::Sha1.mac_len(), 20);
    /// ```
    pub fn mac_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha1 => 20,
        }
    }

    fn malformed_len(self) -> VerifyError {
        match self {
            Algorithm::Sha256 => VerifyError::Malformed("not a SHA-256 digest"),
            Algorithm::Sha1 => VerifyError::Malformed("not a SHA-1 digest"),
        }
    }
}

/// How the MAC is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Standard base64 with padding (RFC 4648 §4).
    Base64,
    /// Hexadecimal, either case.
    Hex,
}

/// A signature scheme: which HMAC, written how. Deserialises from
/// `{"algorithm": "sha256", "encoding": "base64"}` (or the TOML equivalent), so
/// configuration-defined adapters can name one.
///
/// ```
/// use loyaltyd_adapter::signature::{Algorithm, Encoding, Scheme};
/// let s: Scheme = serde_json::from_str(r#"{"algorithm": "sha1", "encoding": "hex"}"#).unwrap();
/// assert_eq!(s, Scheme::HMAC_SHA1_HEX);
/// assert_eq!(s, Scheme { algorithm: Algorithm::Sha1, encoding: Encoding::Hex });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheme {
    /// The hash under the HMAC.
    pub algorithm: Algorithm,
    /// How the header writes the MAC.
    pub encoding: Encoding,
}

impl Scheme {
    /// HMAC-SHA256, base64 (Shopify, Square, WooCommerce).
    pub const HMAC_SHA256_BASE64: Scheme = Scheme {
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Base64,
    };
    /// HMAC-SHA256, hex.
    pub const HMAC_SHA256_HEX: Scheme = Scheme {
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
    };
    /// HMAC-SHA1, base64 (Square's legacy `x-square-signature`).
    pub const HMAC_SHA1_BASE64: Scheme = Scheme {
        algorithm: Algorithm::Sha1,
        encoding: Encoding::Base64,
    };
    /// HMAC-SHA1, hex.
    pub const HMAC_SHA1_HEX: Scheme = Scheme {
        algorithm: Algorithm::Sha1,
        encoding: Encoding::Hex,
    };

    /// The header value a sender using this scheme would send for `parts` under `key`
    /// (for tests, fixtures and the CLI; production code only verifies).
    ///
    /// ```
    /// use loyaltyd_adapter::signature::Scheme;
    /// // RFC 4231 test case 2.
    /// assert_eq!(Scheme::HMAC_SHA256_HEX.sign(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
    ///            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /// ```
    pub fn sign(&self, key: &[u8], parts: &[&[u8]]) -> String {
        let mac: Vec<u8> = match self.algorithm {
            Algorithm::Sha256 => hmac_sha256(key, parts).to_vec(),
            Algorithm::Sha1 => hmac_sha1(key, parts).to_vec(),
        };
        match self.encoding {
            Encoding::Base64 => base64_encode(&mac),
            Encoding::Hex => hex_encode(&mac),
        }
    }

    /// Same as [`verify`] with this scheme.
    pub fn verify(
        &self,
        secrets: &[Secret],
        parts: &[&[u8]],
        header: &str,
    ) -> Result<(), VerifyError> {
        verify(*self, secrets, parts, header)
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
    mac_over::<HmacSha256>(key, parts)
        .finalize()
        .into_bytes()
        .into()
}

/// HMAC-SHA1 of the concatenation of `parts` under `key`.
///
/// ```
/// use loyaltyd_adapter::signature::{hmac_sha1, hex_encode};
/// // RFC 2202 test case 2.
/// let mac = hmac_sha1(b"Jefe", &[b"what do ya want for nothing?"]);
/// assert_eq!(hex_encode(&mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
/// ```
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    mac_over::<HmacSha1>(key, parts)
        .finalize()
        .into_bytes()
        .into()
}

/// Standard base64 with padding.
///
/// ```
/// assert_eq!(loyaltyd_adapter::signature::base64_encode(b"hi"), "aGk=");
/// ```
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode standard base64 with padding; `None` if it is not.
///
/// ```
/// use loyaltyd_adapter::signature::base64_decode;
/// assert_eq!(base64_decode("aGk="), Some(b"hi".to_vec()));
/// assert_eq!(base64_decode("%%"), None);
/// ```
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .ok()
}

/// Lower-case hexadecimal.
///
/// ```
/// assert_eq!(loyaltyd_adapter::signature::hex_encode(&[0x00, 0xab, 0xff]), "00abff");
/// ```
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Decode hexadecimal (either case, no prefix, no separators); `None` if it is not an
/// even number of hex digits.
///
/// ```
/// use loyaltyd_adapter::signature::hex_decode;
/// assert_eq!(hex_decode("00AbfF"), Some(vec![0x00, 0xab, 0xff]));
/// assert_eq!(hex_decode("abc"), None);
/// assert_eq!(hex_decode("0x"), None);
/// ```
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Check a `header` written in `scheme` over the concatenation of `parts`, accepting any
/// of `secrets`. Constant-time; empty secrets are skipped (see the module docs).
///
/// ```
/// use loyaltyd_adapter::{Secret, VerifyError};
/// use loyaltyd_adapter::signature::{self, Algorithm, Encoding, Scheme};
///
/// let secrets = [Secret::new("old"), Secret::new("Jefe")];
/// let body: &[u8] = b"what do ya want for nothing?";
/// // RFC 2202 test case 2, as hex and as base64.
/// let sha1_hex = Scheme { algorithm: Algorithm::Sha1, encoding: Encoding::Hex };
/// assert_eq!(signature::verify(sha1_hex, &secrets, &[body], "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"), Ok(()));
/// assert_eq!(signature::verify(Scheme::HMAC_SHA1_BASE64, &secrets, &[body], "7/zfauXrL6LSdBbV8YTfnCWafHk="), Ok(()));
/// // Another body, the same signature: no.
/// assert_eq!(signature::verify(sha1_hex, &secrets, &[b"x"], "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
///            Err(VerifyError::Mismatch));
/// // A SHA-256 scheme given a SHA-1 length MAC: malformed, not a mismatch.
/// assert_eq!(signature::verify(Scheme::HMAC_SHA256_HEX, &secrets, &[body], "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
///            Err(VerifyError::Malformed("not a SHA-256 digest")));
/// ```
pub fn verify(
    scheme: Scheme,
    secrets: &[Secret],
    parts: &[&[u8]],
    header: &str,
) -> Result<(), VerifyError> {
    let header = header.trim();
    let expected = match scheme.encoding {
        Encoding::Base64 => base64_decode(header).ok_or(VerifyError::Malformed("not base64"))?,
        Encoding::Hex => hex_decode(header).ok_or(VerifyError::Malformed("not hex"))?,
    };
    if expected.len() != scheme.algorithm.mac_len() {
        return Err(scheme.algorithm.malformed_len());
    }
    match scheme.algorithm {
        Algorithm::Sha256 => verify_mac::<HmacSha256>(secrets, parts, &expected),
        Algorithm::Sha1 => verify_mac::<HmacSha1>(secrets, parts, &expected),
    }
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
    verify(Scheme::HMAC_SHA256_BASE64, secrets, parts, header)
}

/// Check a hex HMAC-SHA256 `header` (either case) over the concatenation of `parts`,
/// accepting any of `secrets`. Constant-time.
///
/// ```
/// use loyaltyd_adapter::{Secret, VerifyError, signature::verify_hmac_sha256_hex};
/// // RFC 4231 test case 2.
/// let secrets = [Secret::new("Jefe")];
/// let mac = "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843";
/// assert_eq!(verify_hmac_sha256_hex(&secrets, &[b"what do ya want for nothing?"], mac), Ok(()));
/// assert_eq!(verify_hmac_sha256_hex(&secrets, &[b"what do ya want for something?"], mac),
///            Err(VerifyError::Mismatch));
/// assert_eq!(verify_hmac_sha256_hex(&secrets, &[b""], "zz"), Err(VerifyError::Malformed("not hex")));
/// ```
pub fn verify_hmac_sha256_hex(
    secrets: &[Secret],
    parts: &[&[u8]],
    header: &str,
) -> Result<(), VerifyError> {
    verify(Scheme::HMAC_SHA256_HEX, secrets, parts, header)
}

/// Check a base64 HMAC-SHA1 `header` over the concatenation of `parts`, accepting any
/// of `secrets`. Constant-time. For legacy senders only (Square's `x-square-signature`).
///
/// ```
/// use loyaltyd_adapter::{Secret, signature::{hmac_sha1, base64_encode, verify_hmac_sha1_base64}};
/// let url: &[u8] = b"https://example.com/webhooks/demo/square";
/// let body: &[u8] = br#"{"type":"payment.updated"}"#;
/// let header = base64_encode(&hmac_sha1(b"sig-key", &[url, body]));
/// assert_eq!(verify_hmac_sha1_base64(&[Secret::new("sig-key")], &[url, body], &header), Ok(()));
/// ```
pub fn verify_hmac_sha1_base64(
    secrets: &[Secret],
    parts: &[&[u8]],
    header: &str,
) -> Result<(), VerifyError> {
    verify(Scheme::HMAC_SHA1_BASE64, secrets, parts, header)
}

/// Any non-empty secret whose MAC over `parts` equals `expected`, compared in constant
/// time by [`Mac::verify_slice`]. Every secret is tried, so the time taken does not
/// reveal which one matched either.
fn verify_mac<M: Mac + KeyInit>(
    secrets: &[Secret],
    parts: &[&[u8]],
    expected: &[u8],
) -> Result<(), VerifyError> {
    let mut matched = false;
    for secret in secrets.iter().filter(|s| !s.expose().is_empty()) {
        matched |= mac_over::<M>(secret.expose(), parts)
            .verify_slice(expected)
            .is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn mac_over<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> M {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <M as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One RFC test case: key, data, expected MAC in hex (the full MAC, or a prefix for
    /// the truncation cases).
    struct Vector {
        case: &'static str,
        key: Vec<u8>,
        data: Vec<u8>,
        mac_hex: &'static str,
    }

    fn rfc4231() -> Vec<Vector> {
        vec![
            Vector {
                case: "RFC 4231 4.2",
                key: vec![0x0b; 20],
                data: b"Hi There".to_vec(),
                mac_hex: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            },
            Vector {
                case: "RFC 4231 4.3",
                key: b"Jefe".to_vec(),
                data: b"what do ya want for nothing?".to_vec(),
                mac_hex: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            },
            Vector {
                case: "RFC 4231 4.4",
                key: vec![0xaa; 20],
                data: vec![0xdd; 50],
                mac_hex: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            },
            Vector {
                case: "RFC 4231 4.5",
                key: (0x01..=0x19).collect(),
                data: vec![0xcd; 50],
                mac_hex: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            },
            Vector {
                case: "RFC 4231 4.6 (truncated to 128 bits)",
                key: vec![0x0c; 20],
                data: b"Test With Truncation".to_vec(),
                mac_hex: "a3b6167473100ee06e0c796c2955552b",
            },
            Vector {
                case: "RFC 4231 4.7",
                key: vec![0xaa; 131],
                data: b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                mac_hex: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            },
            Vector {
                case: "RFC 4231 4.8",
                key: vec![0xaa; 131],
                data: b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                mac_hex: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            },
        ]
    }

    fn rfc2202() -> Vec<Vector> {
        vec![
            Vector {
                case: "RFC 2202 3.1",
                key: vec![0x0b; 20],
                data: b"Hi There".to_vec(),
                mac_hex: "b617318655057264e28bc0b6fb378c8ef146be00",
            },
            Vector {
                case: "RFC 2202 3.2",
                key: b"Jefe".to_vec(),
                data: b"what do ya want for nothing?".to_vec(),
                mac_hex: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            },
            Vector {
                case: "RFC 2202 3.3",
                key: vec![0xaa; 20],
                data: vec![0xdd; 50],
                mac_hex: "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
            },
            Vector {
                case: "RFC 2202 3.4",
                key: (0x01..=0x19).collect(),
                data: vec![0xcd; 50],
                mac_hex: "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
            },
            Vector {
                case: "RFC 2202 3.5",
                key: vec![0x0c; 20],
                data: b"Test With Truncation".to_vec(),
                mac_hex: "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
            },
            Vector {
                case: "RFC 2202 3.6",
                key: vec![0xaa; 80],
                data: b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                mac_hex: "aa4ae5e15272d00e95705637ce8a3b55ed402112",
            },
            Vector {
                case: "RFC 2202 3.7",
                key: vec![0xaa; 80],
                data: b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
                    .to_vec(),
                mac_hex: "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
            },
        ]
    }

    /// The RFC keys are bytes, `Secret` is text: only the vectors whose key is UTF-8 can
    /// go through `verify`; the others are checked through `hmac_*` directly.
    fn secret(key: &[u8]) -> Option<Secret> {
        std::str::from_utf8(key).ok().map(Secret::new)
    }

    #[test]
    fn hmac_sha256_matches_every_rfc_4231_vector() {
        for v in rfc4231() {
            let mac = hex_encode(&hmac_sha256(&v.key, &[&v.data]));
            assert!(mac.starts_with(v.mac_hex), "{}: {mac}", v.case);
        }
    }

    #[test]
    fn hmac_sha1_matches_every_rfc_2202_vector() {
        for v in rfc2202() {
            assert_eq!(
                hex_encode(&hmac_sha1(&v.key, &[&v.data])),
                v.mac_hex,
                "{}",
                v.case
            );
        }
    }

    #[test]
    fn parts_are_macced_as_their_concatenation() {
        for v in rfc4231().into_iter().chain(rfc2202()) {
            let (a, b) = v.data.split_at(v.data.len() / 3);
            assert_eq!(
                hmac_sha256(&v.key, &[a, b]),
                hmac_sha256(&v.key, &[&v.data]),
                "{}",
                v.case
            );
            assert_eq!(
                hmac_sha1(&v.key, &[a, &[], b]),
                hmac_sha1(&v.key, &[&v.data]),
                "{}",
                v.case
            );
        }
    }

    #[test]
    fn every_full_length_utf8_keyed_vector_verifies_in_every_encoding() {
        let cases = rfc4231()
            .into_iter()
            .map(|v| (Algorithm::Sha256, v))
            .chain(rfc2202().into_iter().map(|v| (Algorithm::Sha1, v)));
        let mut checked = 0;
        for (algorithm, v) in cases {
            if v.mac_hex.len() != algorithm.mac_len() * 2 {
                continue; // a truncated MAC is not a whole signature
            }
            let Some(s) = secret(&v.key) else { continue };
            let mac = hex_decode(v.mac_hex).unwrap();
            let secrets = [Secret::new("another"), s];
            for (encoding, header) in [
                (Encoding::Hex, v.mac_hex.to_string()),
                (Encoding::Hex, v.mac_hex.to_uppercase()),
                (Encoding::Base64, base64_encode(&mac)),
                (Encoding::Base64, format!(" {}\t", base64_encode(&mac))),
            ] {
                let scheme = Scheme {
                    algorithm,
                    encoding,
                };
                assert_eq!(
                    verify(scheme, &secrets, &[&v.data], &header),
                    Ok(()),
                    "{} {scheme:?} {header}",
                    v.case
                );
                let mut other = v.data.clone();
                other.push(b'!');
                assert_eq!(
                    verify(scheme, &secrets, &[&other], &header),
                    Err(VerifyError::Mismatch),
                    "{} {scheme:?}",
                    v.case
                );
            }
            checked += 1;
        }
        // RFC 4231 4.2, 4.3, 4.5 and RFC 2202 3.1, 3.2, 3.4, 3.5; the 0xaa keys are not
        // UTF-8 and 4.6 is truncated.
        assert_eq!(checked, 7);
    }

    #[test]
    fn the_named_helpers_are_the_generic_verify_with_their_scheme() {
        let key = Secret::new("Jefe");
        let data: &[u8] = b"what do ya want for nothing?";
        let sha256 = hmac_sha256(key.expose(), &[data]);
        let sha1 = hmac_sha1(key.expose(), &[data]);
        let secrets = std::slice::from_ref(&key);
        assert_eq!(
            verify_hmac_sha256_base64(secrets, &[data], &base64_encode(&sha256)),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256_hex(secrets, &[data], &hex_encode(&sha256)),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha1_base64(secrets, &[data], &base64_encode(&sha1)),
            Ok(())
        );
        // The wrong helper for the header: a length error, not a silent mismatch.
        assert_eq!(
            verify_hmac_sha1_base64(secrets, &[data], &base64_encode(&sha256)),
            Err(VerifyError::Malformed("not a SHA-1 digest"))
        );
        assert_eq!(
            verify_hmac_sha256_hex(secrets, &[data], &base64_encode(&sha256)),
            Err(VerifyError::Malformed("not hex"))
        );
    }

    #[test]
    fn sign_agrees_with_verify_for_every_scheme() {
        for scheme in [
            Scheme::HMAC_SHA256_BASE64,
            Scheme::HMAC_SHA256_HEX,
            Scheme::HMAC_SHA1_BASE64,
            Scheme::HMAC_SHA1_HEX,
        ] {
            let header = scheme.sign(b"k", &[b"url", b"body"]);
            assert_eq!(
                scheme.verify(&[Secret::new("k")], &[b"urlbody"], &header),
                Ok(())
            );
            assert_eq!(
                scheme.verify(&[Secret::new("K")], &[b"urlbody"], &header),
                Err(VerifyError::Mismatch)
            );
        }
    }

    #[test]
    fn a_rotated_secret_verifies_whichever_position_it_is_in() {
        let header = Scheme::HMAC_SHA256_BASE64.sign(b"current", &[b"x"]);
        for secrets in [
            vec![Secret::new("current"), Secret::new("next")],
            vec![Secret::new("next"), Secret::new("current")],
            vec![Secret::new("a"), Secret::new("current"), Secret::new("b")],
        ] {
            assert_eq!(
                verify_hmac_sha256_base64(&secrets, &[b"x"], &header),
                Ok(())
            );
        }
    }

    #[test]
    fn an_empty_secret_never_verifies_even_against_its_own_mac() {
        for scheme in [Scheme::HMAC_SHA256_BASE64, Scheme::HMAC_SHA1_HEX] {
            let header = scheme.sign(b"", &[b"x"]);
            assert_eq!(
                verify(scheme, &[Secret::new("")], &[b"x"], &header),
                Err(VerifyError::Mismatch)
            );
        }
    }

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
        let r = verify_hmac_sha256_hex(&[Secret::new("k")], &[b"x"], "00ff");
        assert_eq!(r, Err(VerifyError::Malformed("not a SHA-256 digest")));
        let r = verify_hmac_sha1_base64(&[Secret::new("k")], &[b"x"], "");
        assert_eq!(r, Err(VerifyError::Malformed("not a SHA-1 digest")));
    }

    #[test]
    fn no_secrets_configured_never_verifies() {
        let mac = base64_encode(&hmac_sha256(b"", &[b"x"]));
        assert_eq!(
            verify_hmac_sha256_base64(&[], &[b"x"], &mac),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn hex_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let text = hex_encode(&all);
        assert_eq!(text.len(), 512);
        assert_eq!(hex_decode(&text), Some(all.clone()));
        assert_eq!(hex_decode(&text.to_uppercase()), Some(all));
        assert_eq!(hex_decode(""), Some(vec![]));
        for bad in ["g0", "0", " 00", "0-", "é0"] {
            assert_eq!(hex_decode(bad), None, "{bad:?}");
        }
    }
}

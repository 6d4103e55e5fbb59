//! Checking a request's signature as the definition's `[signature]` table describes, with
//! the SDK's HMAC helpers ([`loyaltyd_adapter::signature`]): constant-time, any of several
//! secrets (rotation), empty secrets never accepted.

use loyaltyd_adapter::signature::{self as sdk, Scheme};
use loyaltyd_adapter::{RawRequest, Secret, VerifyError};

use crate::definition::{Message, SignatureSpec};

/// Verify `req` against `spec` under any of `secrets`. Nothing of the body is read except
/// as MAC input.
pub(crate) fn verify(
    spec: &SignatureSpec,
    secrets: &[Secret],
    notification_url: Option<&str>,
    req: &RawRequest,
) -> Result<(), VerifyError> {
    let value = req
        .header(spec.header)
        .ok_or(VerifyError::MissingHeader(spec.header))?
        .trim();
    let value = match &spec.prefix {
        Some(prefix) => value
            .strip_prefix(prefix.as_str())
            .ok_or(VerifyError::Malformed(
                "signature lacks the expected prefix",
            ))?,
        None => value,
    };
    let url: &[u8] = match spec.message {
        Message::Body => b"",
        Message::UrlAndBody => notification_url
            .ok_or(VerifyError::Malformed(
                "no notification_url is configured for this shop (the signature covers it)",
            ))?
            .as_bytes(),
    };
    let scheme = Scheme {
        algorithm: spec.algorithm,
        encoding: spec.encoding,
    };
    sdk::verify(scheme, secrets, &[url, &req.body], value)
}

//! How long a provider asked us to wait: `Retry-After` (RFC 9110 §10.2.3: delay-seconds or
//! an HTTP-date) and SendGrid's `X-RateLimit-Reset` (Unix epoch seconds).
//!
//! Functions take `now` so they can be tested without a clock. Times already past give a
//! zero wait (RFC 9110: retry now), not `None`, so a caller can tell "asked to wait 0 s" from
//! "said nothing".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::header::HeaderMap;

/// Parse a `Retry-After` value: `120`, or `Sun, 06 Nov 1994 08:49:37 GMT` (and the two
/// obsolete HTTP-date forms RFC 9110 still asks recipients to accept).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings do not fit a u64; treat them as unusable, not as 0.
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    Some(until(at, now))
}

/// Parse SendGrid's `X-RateLimit-Reset` (epoch seconds) into a wait from `now`.
pub fn parse_rate_limit_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(until(UNIX_EPOCH + Duration::from_secs(secs), now))
}

/// `Retry-After` from a response's headers, if present and valid.
pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// SendGrid's wait: `X-RateLimit-Reset`, else `Retry-After`.
pub fn sendgrid_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_rate_limit_reset(v, now))
        .or_else(|| from_headers(headers, now))
}

fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// IMF-fixdate, RFC 850 and asctime forms; all are UTC by definition.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let naive = NaiveDateTime::parse_from_str(value, "%a, %d %b %Y %H:%M:%S GMT")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT"))
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y"))
        .ok()
        .or_else(|| {
            // Lenient fallback for senders that write `+0000` instead of `GMT`.
            DateTime::parse_from_rfc2822(value)
                .ok()
                .map(|d| d.naive_utc())
        })?;
    let at: DateTime<Utc> = naive.and_utc();
    Some(at.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06 08:49:30 UTC: seven seconds before the RFC's example date.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_770)
    }

    #[test]
    fn retry_after_in_seconds_is_read_as_a_delay() {
        assert_eq!(parse_retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5", now()), None);
        assert_eq!(parse_retry_after("1.5", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
        assert_eq!(parse_retry_after("99999999999999999999999", now()), None);
    }

    #[test]
    fn retry_after_as_an_http_date_is_read_relative_to_now() {
        let seven = Some(Duration::from_secs(7));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now()),
            seven
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now()),
            seven
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now()), seven);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 +0000", now()),
            seven
        );
    }

    #[test]
    fn a_retry_after_date_in_the_past_means_retry_now() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_retry_after_is_ignored() {
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(
            parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT", now()),
            None
        );
    }

    #[test]
    fn rate_limit_reset_is_epoch_seconds_relative_to_now() {
        assert_eq!(
            parse_rate_limit_reset("784111777", now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_rate_limit_reset("784111000", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_rate_limit_reset("later", now()), None);
    }

    #[test]
    fn sendgrid_prefers_the_rate_limit_reset_over_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "30".parse().unwrap());
        assert_eq!(
            sendgrid_from_headers(&h, now()),
            Some(Duration::from_secs(30))
        );
        h.insert("x-ratelimit-reset", "784111777".parse().unwrap());
        assert_eq!(
            sendgrid_from_headers(&h, now()),
            Some(Duration::from_secs(7))
        );
    }
}

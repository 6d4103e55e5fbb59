//! Square signatures against vectors computed by OpenSSL (and Square's own two
//! known-answer vectors), never by loyaltyd's code.

mod common;

use common::{adapter, read, request, vectors, DEMO_KEY, DEMO_URL};
use loyaltyd_adapter::{signature, Adapter, VerifyError};

#[test]
fn the_vectors_include_square_s_two_official_known_answers() {
    let vs = vectors();
    let official: Vec<_> = vs
        .iter()
        .filter(|v| v.url.starts_with("https://webhook.site/"))
        .map(|v| v.signature.as_str())
        .collect();
    assert_eq!(
        official,
        [
            "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
            "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="
        ]
    );
    for v in &vs {
        assert!(
            v.command.starts_with("printf '%s' '") && v.command.contains("openssl dgst -sha256"),
            "{}: {}",
            v.file,
            v.command
        );
    }
}

#[test]
fn every_webhook_fixture_has_an_openssl_vector() {
    let signed: Vec<String> = vectors().into_iter().map(|v| v.file).collect();
    for entry in std::fs::read_dir(common::fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") && !common::NOT_BODIES.contains(&name.as_str()) {
            assert!(signed.contains(&name), "{name} has no signature vector");
        }
    }
}

#[test]
fn every_openssl_vector_verifies_with_its_key_and_url() {
    let vs = vectors();
    assert!(vs.len() >= 15);
    for v in vs {
        let req = request(read(&v.file), Some(&v.signature));
        assert_eq!(
            adapter(&[&v.secret], &v.url).verify(&req),
            Ok(()),
            "vector for {}",
            v.file
        );
    }
}

#[test]
fn every_vector_fails_under_another_key() {
    for v in vectors() {
        let req = request(read(&v.file), Some(&v.signature));
        let other = format!("{}x", v.secret);
        assert_eq!(
            adapter(&[&other], &v.url).verify(&req),
            Err(VerifyError::Mismatch),
            "{}",
            v.file
        );
    }
}

#[test]
fn every_vector_fails_under_another_notification_url() {
    for v in vectors() {
        let req = request(read(&v.file), Some(&v.signature));
        let http = v.url.replacen("https://", "http://", 1);
        let slash = format!("{}/", v.url);
        for url in [http.as_str(), slash.as_str()] {
            assert_eq!(
                adapter(&[&v.secret], url).verify(&req),
                Err(VerifyError::Mismatch),
                "{} under {url}",
                v.file
            );
        }
    }
}

#[test]
fn a_body_changed_by_one_byte_is_rejected() {
    for v in vectors() {
        let mut body = read(&v.file);
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
        let req = request(body, Some(&v.signature));
        assert_eq!(
            adapter(&[&v.secret], &v.url).verify(&req),
            Err(VerifyError::Mismatch),
            "{}",
            v.file
        );
    }
}

#[test]
fn a_truncated_body_is_rejected() {
    for v in vectors() {
        let mut body = read(&v.file);
        body.pop();
        let req = request(body, Some(&v.signature));
        assert_eq!(
            adapter(&[&v.secret], &v.url).verify(&req),
            Err(VerifyError::Mismatch),
            "{}",
            v.file
        );
    }
}

#[test]
fn a_signature_of_the_body_alone_without_the_url_is_rejected() {
    let body = read("payment-updated-completed.json");
    let body_only = signature::base64_encode(&signature::hmac_sha256(
        DEMO_KEY.as_bytes(),
        &[body.as_slice()],
    ));
    assert_eq!(
        adapter(&[DEMO_KEY], DEMO_URL).verify(&request(body, Some(&body_only))),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn a_request_without_the_signature_header_is_rejected() {
    let req = request(read("payment-updated-completed.json"), None);
    assert_eq!(
        adapter(&[DEMO_KEY], DEMO_URL).verify(&req),
        Err(VerifyError::MissingHeader("x-square-hmacsha256-signature"))
    );
}

#[test]
fn the_legacy_sha1_header_alone_is_not_accepted() {
    let mut req = request(read("payment-updated-completed.json"), None);
    req.headers.insert(
        "x-square-signature",
        "2kRE5qRU2tR+tBGlDwMEw2avJ7QM4ikPYD/PJ3bd9Og="
            .parse()
            .unwrap(),
    );
    assert_eq!(
        adapter(&[DEMO_KEY], DEMO_URL).verify(&req),
        Err(VerifyError::MissingHeader("x-square-hmacsha256-signature"))
    );
}

#[test]
fn a_signature_that_is_not_base64_is_malformed() {
    let req = request(read("payment-updated-completed.json"), Some("not base64!"));
    assert_eq!(
        adapter(&[DEMO_KEY], DEMO_URL).verify(&req),
        Err(VerifyError::Malformed("not base64"))
    );
}

#[test]
fn an_old_key_still_verifies_during_rotation() {
    let v = vectors()
        .into_iter()
        .find(|v| v.file == "payment-updated-completed.json")
        .unwrap();
    let req = request(read(&v.file), Some(&v.signature));
    assert_eq!(
        adapter(&["new-square-signature-key", &v.secret], &v.url).verify(&req),
        Ok(())
    );
}

#[test]
fn no_signature_key_configured_verifies_nothing() {
    let v = &vectors()[2];
    let req = request(read(&v.file), Some(&v.signature));
    assert_eq!(
        adapter(&[], &v.url).verify(&req),
        Err(VerifyError::Mismatch)
    );
}

use axum::http::{header, HeaderMap, HeaderValue};

use super::answer::allowed_line;
use super::ndjson::item;
use super::{media_type, CheckLine};

#[test]
fn an_ndjson_line_is_a_json_string_an_object_or_the_bare_number() {
    assert_eq!(item("\"+33612345678\"").unwrap(), "+33612345678");
    assert_eq!(
        item("{\"contact\":\"06 12 34 56 78\"}").unwrap(),
        "06 12 34 56 78"
    );
    assert_eq!(item("+14155552671").unwrap(), "+14155552671");
    let broken = item("{\"phone\":\"+33612345678\"}").unwrap_err();
    assert!(broken.to_string().starts_with("invalid JSON: "), "{broken}");
}

#[test]
fn media_types_lose_their_parameters_and_case() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("Application/X-NDJSON; charset=utf-8"),
    );
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, */*"),
    );
    assert_eq!(
        media_type(&headers, header::CONTENT_TYPE).as_deref(),
        Some("application/x-ndjson")
    );
    assert_eq!(
        media_type(&headers, header::ACCEPT).as_deref(),
        Some("application/json")
    );
}

#[test]
fn an_allowed_line_is_written_as_check_line_serializes_it() {
    for contact in [
        "+33612345678",
        "US.13491208655302741918",
        "quote\"and\\slash",
    ] {
        let mut direct = Vec::new();
        allowed_line(&mut direct, 42, contact).unwrap();
        let line = CheckLine {
            outcome: "allowed".into(),
            line: Some(42),
            contact: Some(contact.into()),
            input: None,
            reason: None,
            since: None,
            detail: None,
            counts: None,
        };
        let mut expected = serde_json::to_vec(&line).unwrap();
        expected.push(b'\n');
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}

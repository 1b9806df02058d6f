//! The import readers (`POST /v1/tenants/{tenant}/imports`: CSV with a header row, or NDJSON),
//! row by row up to the record each row asks for, as the handler reads them but with nothing
//! committed. The first byte chooses the format; the rest is the body.
//!
//! Properties: reading never panics; only a CSV header can refuse a whole body, with a
//! reason; every row is a record or a non-empty reason, in line order, on a line of the body,
//! and every NDJSON line with something on it is one row; a record's contact is normalized
//! (E.164 or a user ID), its time within the clock bounds, its key a 128-bit digest that is
//! the same when the body is read again (so a file sent twice is all duplicates); a byte
//! order mark in front of the body changes nothing.

use super::profile;
use crate::api::fuzzing::check_rows;
use crate::domain::contact;
use chrono::Utc;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What a reading gave, comparable: each row's line and key or reason, or the reason the
/// whole body was refused.
type Outcome = Result<Vec<(u64, Result<String, String>)>, String>;

/// What a reading gave, comparable: each row's line and key, or its reason without the
/// server time a reason about a future time gives.
fn outcome(csv: bool, body: &[u8]) -> Outcome {
    let timeless = |reason: String| match reason.split_once(" (server time ") {
        Some((before, after)) => format!(
            "{before}{}",
            after.split_once(')').map_or("", |(_, rest)| rest)
        ),
        None => reason,
    };
    Ok(check_rows(profile(), csv, body)?
        .into_iter()
        .map(|(line, r)| (line, r.map(|record| record.key).map_err(timeless)))
        .collect())
}

/// The target's properties on one input: panics where one does not hold.
pub fn check(data: &[u8]) {
    let Some((&format, body)) = data.split_first() else {
        return;
    };
    let csv = format & 1 == 0;
    let profile = profile();
    let now = Utc::now();
    let rows = match check_rows(profile, csv, body) {
        Ok(rows) => rows,
        Err(reason) => {
            assert!(csv, "an NDJSON body was refused whole: {reason}");
            assert!(!reason.is_empty());
            return;
        }
    };
    // A CSV line ends at CR, LF or CRLF; an NDJSON line at LF.
    let ends = body
        .iter()
        .enumerate()
        .filter(|&(i, b)| *b == b'\n' || (csv && *b == b'\r' && body.get(i + 1) != Some(&b'\n')))
        .count();
    let lines = ends as u64 + 1;
    let mut previous = 0;
    for (line, row) in &rows {
        assert!(
            *line > previous && *line <= lines,
            "row on line {line} of {lines}, after {previous}"
        );
        previous = *line;
        match row {
            Ok(record) => {
                assert_eq!(record.line, Some(*line));
                let c = record.contact.as_str();
                assert_eq!(
                    contact::normalize(c, profile.region).map(|n| n.as_str().to_string()),
                    Ok(c.to_string()),
                    "a contact that is not in its normal form"
                );
                assert!(profile.clock.check(record.occurred_at, now).is_ok());
                assert!(
                    record.key.len() == 32 && record.key.bytes().all(|b| b.is_ascii_hexdigit())
                );
            }
            Err(reason) => assert!(!reason.is_empty(), "a row rejected without a reason"),
        }
    }
    if !csv {
        let written = body
            .split(|b| *b == b'\n')
            .filter(|l| !String::from_utf8_lossy(l).trim().is_empty())
            .count();
        assert_eq!(rows.len(), written, "NDJSON lines and rows differ");
    }
    let again = outcome(csv, body);
    assert_eq!(
        again,
        outcome(csv, body),
        "the same body read twice differs"
    );
    // Same rows and records; a reason may differ, as a CSV error counts the mark's bytes.
    if !body.starts_with(BOM) {
        let keys = |o: Outcome| {
            o.map(|rows| {
                rows.into_iter()
                    .map(|(line, r)| (line, r.ok()))
                    .collect::<Vec<_>>()
            })
            .map_err(|_| ())
        };
        let with_bom = [BOM, body].concat();
        assert_eq!(
            keys(outcome(csv, &with_bom)),
            keys(again),
            "a byte order mark changed the rows"
        );
    }
}

//! The NDJSON audience check body (`POST …/consent/check` as `application/x-ndjson`): lines
//! read one at a time from a body that may arrive in pieces of any size and stop early (over
//! the limit, too slow, client gone), then each contact normalized as the check does.
//! The first byte sets the read buffer's size, the next two where the body breaks off (when
//! the first byte is odd); the rest is the body.
//!
//! Properties: reading never panics; every line with something on it is answered once, in
//! order, with its number; the answer is the same whatever the pieces; a body that breaks
//! off answers exactly its complete lines, then ends with the error and nothing after it; a
//! byte order mark in front changes nothing; a contact a line names normalizes to a form
//! that normalizes to itself, so one person in two spellings is answered once.

use std::io::{BufReader, Read};

use super::profile;
use crate::api::fuzzing::{Line, Lines};
use crate::query;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const LIMIT: usize = 1 << 20;

/// A body that gives its bytes, then fails at `cut` when there is one.
struct Body<'a> {
    bytes: &'a [u8],
    at: usize,
    cut: Option<usize>,
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = self.cut.unwrap_or(self.bytes.len()).min(self.bytes.len());
        if self.at == end && self.cut.is_some() {
            return Err(std::io::Error::other("connection reset"));
        }
        let n = buf.len().min(end - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The lines of `bytes`, read through a buffer of `capacity` bytes.
fn lines(bytes: &[u8], capacity: usize, cut: Option<usize>) -> Vec<Line> {
    let body = Body { bytes, at: 0, cut };
    Lines::new(BufReader::with_capacity(capacity, body), LIMIT).collect()
}

/// The same, as comparable text.
fn read(bytes: &[u8], capacity: usize, cut: Option<usize>) -> Vec<String> {
    let lines = lines(bytes, capacity, cut);
    lines.iter().map(|line| format!("{line:?}")).collect()
}

/// The target's properties on one input: panics where one does not hold.
pub fn check(data: &[u8]) {
    let [size, a, b, body @ ..] = data else {
        return;
    };
    let capacity = 1 + usize::from(*size >> 1);
    let cut = (size & 1 == 1).then(|| usize::from(u16::from_le_bytes([*a, *b])) % (body.len() + 1));

    let lines = lines(body, capacity, cut);
    let mut previous = 0;
    for (i, line) in lines.iter().enumerate() {
        match line {
            Line::Item {
                number,
                text,
                contact,
            } => {
                assert!(*number > previous, "line {number} after line {previous}");
                previous = *number;
                assert!(!text.is_empty() && text.trim() == text);
                if let Ok(contact) = contact {
                    if let Ok(c) = query::contact(profile(), contact) {
                        let again =
                            query::contact(profile(), c.as_str()).map(|n| n.as_str().to_string());
                        assert_eq!(
                            again.ok().as_deref(),
                            Some(c.as_str()),
                            "{c} is not a normal form"
                        );
                    }
                }
            }
            Line::CutShort(detail) => {
                assert!(cut.is_some(), "a whole body was cut short: {detail}");
                assert_eq!(i + 1, lines.len(), "something was answered after the error");
            }
        }
    }
    let whole = read(body, 8192, None);
    match cut {
        None => assert_eq!(read(body, capacity, None), whole),
        Some(cut) => {
            assert!(
                matches!(lines.last(), Some(Line::CutShort(_))),
                "a body that broke off did not end with its error"
            );
            let complete = body[..cut]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let mut expected = read(&body[..complete], 8192, None);
            expected.push(format!("{:?}", lines.last().unwrap()));
            assert_eq!(read(body, capacity, Some(cut)), expected);
        }
    }
    if !body.starts_with(BOM) {
        assert_eq!(
            read(&[BOM, body].concat(), 8192, None),
            whole,
            "a byte order mark changed the answer"
        );
    }
}

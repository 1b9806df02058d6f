//! The answer to an audience check, written as it is computed: a JSON object whose `allowed`
//! list streams while `excluded` and `invalid` wait in buffers (the JSON shape puts them
//! after `allowed`), or one NDJSON line per item in request order, then a summary line.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::super::stream::{ChunkWriter, StreamError};
use super::{CheckLine, Excluded, Invalid};
use crate::domain::event::Purpose;
use crate::query::{Counts, Verdict};

/// Where one item's answer goes.
pub enum Position {
    /// Position in the JSON `contacts` array, from 0.
    Index(u64),
    /// Line of the NDJSON body, from 1.
    Line(u64),
}

/// Writes answers in the requested format.
pub struct Answer<'w> {
    w: &'w mut ChunkWriter,
    ndjson: bool,
    /// JSON only: items written to `allowed` so far (for commas), and the serialized
    /// excluded and invalid entries, which come after `allowed`.
    allowed_written: u64,
    excluded: Vec<u8>,
    invalid: Vec<u8>,
}

impl<'w> Answer<'w> {
    pub fn new(ndjson: bool, purpose: Purpose, w: &'w mut ChunkWriter) -> std::io::Result<Self> {
        if !ndjson {
            write!(
                w,
                "{{\"purpose\":{},\"allowed\":[",
                serde_json::to_string(&purpose).expect("enum")
            )?;
        }
        Ok(Answer {
            w,
            ndjson,
            allowed_written: 0,
            excluded: Vec::new(),
            invalid: Vec::new(),
        })
    }

    pub fn verdict(&mut self, verdict: Verdict, at: &Position) -> Result<(), StreamError> {
        match verdict {
            Verdict::Allowed(c) => self.allowed(c.as_str(), at),
            Verdict::Excluded {
                contact,
                reason,
                since,
            } => self.excluded(contact.as_str(), reason, since, at),
            Verdict::Invalid { input, reason } => self.invalid(&input, &reason, at),
            Verdict::Duplicate(c) => self.duplicate(c.as_str(), at),
        }
    }

    fn line(&mut self, line: &CheckLine) -> Result<(), StreamError> {
        serde_json::to_writer(&mut *self.w, line).map_err(std::io::Error::from)?;
        self.w.write_all(b"\n")?;
        Ok(())
    }

    fn ndjson_line(outcome: &str, at: &Position) -> CheckLine {
        CheckLine {
            outcome: outcome.to_string(),
            line: match at {
                Position::Line(n) => Some(*n),
                Position::Index(i) => Some(i + 1),
            },
            contact: None,
            input: None,
            reason: None,
            since: None,
            detail: None,
            counts: None,
        }
    }

    fn allowed(&mut self, contact: &str, at: &Position) -> Result<(), StreamError> {
        if self.ndjson {
            let line = Self::ndjson_line("allowed", at).line.unwrap_or_default();
            return Ok(allowed_line(&mut *self.w, line, contact)?);
        }
        if self.allowed_written > 0 {
            self.w.write_all(b",")?;
        }
        self.allowed_written += 1;
        serde_json::to_writer(&mut *self.w, contact).map_err(std::io::Error::from)?;
        Ok(())
    }

    fn excluded(
        &mut self,
        contact: &str,
        reason: &str,
        since: Option<DateTime<Utc>>,
        at: &Position,
    ) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("excluded", at);
            l.contact = Some(contact.to_string());
            l.reason = Some(reason.to_string());
            l.since = since;
            return self.line(&l);
        }
        let entry = Excluded {
            contact: contact.to_string(),
            reason: reason.to_string(),
            since,
        };
        append_json(&mut self.excluded, &entry);
        Ok(())
    }

    pub fn invalid(&mut self, input: &str, reason: &str, at: &Position) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("invalid", at);
            l.input = Some(input.to_string());
            l.reason = Some(reason.to_string());
            return self.line(&l);
        }
        let (index, line) = match at {
            Position::Index(i) => (Some(*i), None),
            Position::Line(n) => (None, Some(*n)),
        };
        let entry = Invalid {
            index,
            line,
            input: input.to_string(),
            reason: reason.to_string(),
        };
        append_json(&mut self.invalid, &entry);
        Ok(())
    }

    fn duplicate(&mut self, contact: &str, at: &Position) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("duplicate", at);
            l.contact = Some(contact.to_string());
            return self.line(&l);
        }
        Ok(())
    }

    /// Ends the answer with why it is incomplete. Takes the answer, like [`Answer::finish`],
    /// so nothing (no summary) can follow the error.
    pub fn error(mut self, detail: &str) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("error", &Position::Index(0));
            l.line = None;
            l.detail = Some(detail.to_string());
            return self.line(&l);
        }
        // A JSON answer has no place for an in-band error: cut the transfer short instead.
        Err(std::io::Error::other(detail.to_string()).into())
    }

    pub fn finish(mut self, counts: Counts) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("summary", &Position::Index(0));
            l.line = None;
            l.counts = Some(counts);
            return self.line(&l);
        }
        self.w.write_all(b"],\"excluded\":[")?;
        self.w.write_all(&std::mem::take(&mut self.excluded))?;
        self.w.write_all(b"],\"invalid\":[")?;
        self.w.write_all(&std::mem::take(&mut self.invalid))?;
        self.w.write_all(b"],\"counts\":")?;
        serde_json::to_writer(&mut *self.w, &counts).map_err(std::io::Error::from)?;
        self.w.write_all(b"}")?;
        Ok(())
    }
}

/// The NDJSON line of an allowed contact, nearly every line of an audience: written directly,
/// byte for byte as [`CheckLine`] serializes it, without its allocations.
pub(super) fn allowed_line(w: &mut impl Write, line: u64, contact: &str) -> std::io::Result<()> {
    write!(w, "{{\"outcome\":\"allowed\",\"line\":{line},\"contact\":")?;
    serde_json::to_writer(&mut *w, contact)?;
    w.write_all(b"}\n")
}

fn append_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    if !buf.is_empty() {
        buf.push(b',');
    }
    serde_json::to_writer(&mut *buf, value).expect("writing to a Vec cannot fail");
}

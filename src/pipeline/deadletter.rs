//! Dead-letter records: a rejected input is never dropped; it is kept with its reason, its
//! position in the source and its original bytes, so it can be fixed and replayed. An original
//! too large to travel whole (a dead-letter topic takes less than the inbound topic may hold)
//! is kept as an [`Excerpt`]: enough to recognise it and find it again at its source offset.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::commit::Rejection;
use crate::domain::decide::Origin;

/// The dead-letter file's name in the data directory, where `ingest`, `serve`'s webhook
/// receivers, the start-up purge and `retention` all look for it: one name, so that a purge
/// can never miss the file a writer appends to.
pub const FILE_NAME: &str = "dead-letter.jsonl";

/// One line of `dead-letter.jsonl` (schemas/dead-letter.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// Human-readable reason.
    pub reason: String,
    /// Stable reason code (`invalid_json`, `invalid_contact`, `text_too_long`, …).
    pub code: String,
    /// JSON pointer to the rejected message inside the record, when only part was rejected.
    pub path: Option<String>,
    pub source: DeadLetterSource,
    /// The original record, when it is valid UTF-8.
    pub original: Option<String>,
    /// The original record as hex, when it is not valid UTF-8.
    pub original_hex: Option<String>,
    pub rejected_at: DateTime<Utc>,
    /// SHA-256 of the original, lowercase hex, once the original was purged (`[rgpd]
    /// dead_letter_days` after `rejected_at`): what a replay from the source is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_sha256: Option<String>,
    /// When the original was purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct DeadLetterSource {
    pub file: Option<String>,
    pub line: Option<u64>,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

impl DeadLetter {
    pub fn new(
        rejection: &Rejection,
        origin: &Origin,
        file: Option<&str>,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Self {
        let (original, original_hex) = match std::str::from_utf8(bytes) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (None, Some(hex::encode(bytes))),
        };
        DeadLetter {
            reason: rejection.error.to_string(),
            code: rejection.error.code().to_string(),
            path: rejection.path.clone(),
            source: DeadLetterSource {
                file: file.map(str::to_string),
                line: origin.line,
                topic: origin.topic.clone(),
                partition: origin.kafka_partition,
                offset: origin.offset,
            },
            original,
            original_hex,
            rejected_at: now,
            original_sha256: None,
            purged_at: None,
        }
    }
}

/// How much of an oversized original its truncated dead letter keeps: the start of a webhook
/// says what it is (its shape, its business number, its first messages).
pub const EXCERPT_BYTES: usize = 16 * 1024;

/// The start of an original too large to travel whole, with what identifies all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt<'a> {
    /// The first bytes of the original, at most the `keep` asked for.
    pub head: &'a [u8],
    /// The original's length in bytes.
    pub size: usize,
    /// SHA-256 of the whole original, lowercase hex: what a replay is checked against.
    pub sha256: String,
}

impl<'a> Excerpt<'a> {
    pub fn of(original: &'a [u8], keep: usize) -> Self {
        Excerpt {
            head: &original[..keep.min(original.len())],
            size: original.len(),
            sha256: hex::encode(Sha256::digest(original)),
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary: a reason may quote the input
/// it rejects, so it can be as large as the record.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An append-only JSONL file, fsynced after each batch of lines.
pub struct JsonlFile {
    path: PathBuf,
    file: Option<File>,
}

impl JsonlFile {
    pub fn new(path: &Path) -> Self {
        JsonlFile {
            path: path.to_path_buf(),
            file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends lines and fsyncs them; the file is created on first use.
    pub fn append<I: IntoIterator<Item = String>>(&mut self, lines: I) -> std::io::Result<usize> {
        let mut buf = String::new();
        let mut n = 0;
        for line in lines {
            buf.push_str(&line);
            buf.push('\n');
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(buf.as_bytes())?;
        file.sync_data()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_keeps_the_head_and_identifies_the_whole() {
        let original = vec![b'A'; 1_100_000];
        let e = Excerpt::of(&original, EXCERPT_BYTES);
        assert_eq!(e.head, &original[..EXCERPT_BYTES]);
        assert_eq!(e.size, 1_100_000);
        assert_eq!(e.sha256, hex::encode(Sha256::digest(&original)));
        assert_eq!(e.sha256.len(), 64);
        let short = Excerpt::of(b"{}", EXCERPT_BYTES);
        assert_eq!((short.head, short.size), (b"{}".as_slice(), 2));
        assert!(Excerpt::of(&original, 0).head.is_empty());
    }

    #[test]
    fn clip_never_cuts_a_character() {
        assert_eq!(clip("ARRÊT", 4), "ARR");
        assert_eq!(clip("ARRÊT", 5), "ARRÊ");
        assert_eq!(clip("STOP", 10), "STOP");
        assert_eq!(clip("", 0), "");
    }
}

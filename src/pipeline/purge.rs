//! The original records kept by dead letters are personal data (a phone number, a message
//! text), kept only so that a rejected record can be fixed and replayed. After `[rgpd]
//! dead_letter_days` (default 30) the dead-letter file keeps each line's reason, code, source
//! position and the SHA-256 of its original, and drops the original itself. Kafka's
//! dead-letter topic gets the same bound as its `retention.ms` when the service creates it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a purge found in a dead-letter file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Lines read.
    pub lines: usize,
    /// Lines whose original was (or, in a dry run, would be) dropped.
    pub purged: usize,
}

/// Drops the originals of the dead letters at `path` rejected before `before`, in place
/// (written to a temporary file, fsynced, renamed over the old one). With `dry_run`, only
/// counts. A missing file has nothing to purge; a line that is not a dead letter is kept as is.
/// The caller makes sure nothing appends to the file meanwhile: the services purge at start,
/// before their sinks open it, and the `retention` command holds the data dir's lock.
pub fn purge_originals(
    path: &Path,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> std::io::Result<Purged> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Purged::default()),
        Err(e) => return Err(e),
    };
    let mut found = Purged::default();
    let mut out = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        found.lines += 1;
        match purged_line(&line, before, now) {
            Some(purged) => {
                found.purged += 1;
                out.extend_from_slice(purged.as_bytes());
            }
            None => out.extend_from_slice(&line),
        }
        out.push(b'\n');
    }
    if dry_run || found.purged == 0 {
        return Ok(found);
    }
    let tmp = path.with_extension("purge-tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(found)
}

/// Purges the dead-letter file at `path` of originals older than `[rgpd] dead_letter_days`,
/// logging what it dropped: what the services and `ingest` do at start.
pub fn purge_at_start(path: &Path, keep: chrono::Duration) -> std::io::Result<Purged> {
    let now = Utc::now();
    let found = purge_originals(path, now - keep, now, false)?;
    if found.purged > 0 {
        tracing::info!(
            file = %path.display(),
            purged = found.purged,
            "dead letters past rgpd.dead_letter_days: originals purged"
        );
    }
    Ok(found)
}

/// The line without its original, if it is a dead letter rejected before `before` that still
/// has one.
fn purged_line(line: &[u8], before: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    let mut v: Value = serde_json::from_slice(line).ok()?;
    let o = v.as_object_mut()?;
    let rejected: DateTime<Utc> = o.get("rejected_at")?.as_str()?.parse().ok()?;
    if rejected >= before {
        return None;
    }
    let original = match (o.get("original"), o.get("original_hex")) {
        (Some(Value::String(s)), _) => s.as_bytes().to_vec(),
        (_, Some(Value::String(h))) => hex::decode(h).ok()?,
        _ => return None,
    };
    if !o.contains_key("original_sha256") {
        let sha = hex::encode(Sha256::digest(&original));
        o.insert("original_sha256".into(), Value::String(sha));
    }
    o.insert("original".into(), Value::Null);
    o.insert("original_hex".into(), Value::Null);
    o.insert("purged_at".into(), Value::String(now.to_rfc3339()));
    serde_json::to_string(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(rejected_at: &str, original: &str) -> String {
        serde_json::json!({
            "reason": "invalid contact", "code": "invalid_contact", "path": null,
            "source": {"file": "in.jsonl", "line": 3},
            "original": original, "original_hex": null, "rejected_at": rejected_at,
        })
        .to_string()
    }

    #[test]
    fn originals_older_than_the_bound_are_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letter.jsonl");
        let old = line(
            "2026-01-01T00:00:00Z",
            r#"{"from":"+33612345678","text":"STOP"}"#,
        );
        let new = line("2026-12-01T00:00:00Z", r#"{"from":"+33698765432"}"#);
        std::fs::write(&path, format!("{old}\nnot json\n{new}\n")).unwrap();
        let before: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let now: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().unwrap();

        let dry = purge_originals(&path, before, now, true).unwrap();
        assert_eq!(
            dry,
            Purged {
                lines: 3,
                purged: 1
            }
        );
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("+33612345678"));

        let done = purge_originals(&path, before, now, false).unwrap();
        assert_eq!(
            done,
            Purged {
                lines: 3,
                purged: 1
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("+33612345678"), "{text}");
        assert!(text.contains("+33698765432"), "{text}");
        assert!(text.contains("\nnot json\n"), "{text}");
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["code"], "invalid_contact");
        assert_eq!(first["source"]["line"], 3);
        assert!(first["original"].is_null());
        assert_eq!(
            first["original_sha256"],
            hex::encode(Sha256::digest(br#"{"from":"+33612345678","text":"STOP"}"#))
        );
        assert_eq!(first["purged_at"], "2026-12-02T00:00:00+00:00");
        // Purging again finds nothing left to drop.
        assert_eq!(
            purge_originals(&path, before, now, false).unwrap().purged,
            0
        );
    }

    #[test]
    fn a_missing_file_has_nothing_to_purge() {
        let dir = tempfile::tempdir().unwrap();
        let got = purge_originals(
            &dir.path().join("none.jsonl"),
            Utc::now(),
            Utc::now(),
            false,
        );
        assert_eq!(got.unwrap(), Purged::default());
    }
}

//! `consent-ledger migrate`: brings a ledger written by an older storage layout up to
//! [`SCHEMA_VERSION`]. It writes the converted ledger into a new directory next to the old
//! one, fsyncs it, then swaps it in with two renames and keeps the old one as a backup. A
//! crash before the swap leaves the old ledger untouched (the half-built copy is discarded
//! on the next run); a crash between the two renames is finished by running it again, and
//! opening the ledger refuses to start a fresh one meanwhile.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::store::{open_db, version_of};
use super::{keys, LedgerError, Result, SCHEMA_VERSION};
use crate::domain::event::ConsentEvent;
use crate::rgpd::MasterKey;

/// What a migration did, step by step, for the operator to read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrateReport {
    pub from: u32,
    pub to: u32,
    /// One line per thing rewritten or dropped.
    pub steps: Vec<String>,
    /// Where the old layout is kept, when something was migrated.
    pub backup: Option<PathBuf>,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ledger".into());
    dir.with_file_name(format!("{name}.{suffix}"))
}

fn staging(dir: &Path) -> PathBuf {
    sibling(dir, "migrating")
}

fn err(dir: &Path, detail: impl Into<String>) -> LedgerError {
    LedgerError::Migrate {
        path: dir.display().to_string(),
        detail: detail.into(),
    }
}

/// Refuses to open (and so to create afresh) a ledger whose migration stopped between its two
/// renames: the data is in the staging directory, and `migrate` finishes the swap.
pub(super) fn refuse_if_interrupted(dir: &Path) -> Result<()> {
    if !dir.exists() && staging(dir).exists() {
        return Err(err(
            dir,
            "a migration was interrupted before it finished; run `consent-ledger migrate` again to complete it",
        ));
    }
    Ok(())
}

/// Migrates the ledger in `dir` to the current layout; a no-op on a current one. `master`
/// opens (or, for a ledger written before keys existed, creates) the ledger's keys: layouts 4
/// and 5 seal personal fields under them.
pub fn migrate(dir: &Path, master: MasterKey) -> Result<MigrateReport> {
    let staged = staging(dir);
    if !dir.exists() {
        if staged.exists() {
            rename(&staged, dir)?;
            return Ok(MigrateReport {
                from: SCHEMA_VERSION,
                to: SCHEMA_VERSION,
                steps: vec![format!(
                    "finished an interrupted migration: moved {} into place",
                    staged.display()
                )],
                backup: None,
            });
        }
        return Err(err(dir, "there is no ledger here"));
    }
    let legacy = super::legacy::open_if_sled(dir)?;
    let from = match &legacy {
        Some(old) => super::legacy::version(old)?
            .parse::<u32>()
            .map_err(|_| err(dir, "not a consent-ledger database"))?,
        None => {
            version_of(&open_db(dir)?)?.ok_or_else(|| err(dir, "not a consent-ledger database"))?
        }
    };
    if from == SCHEMA_VERSION {
        return Ok(MigrateReport {
            from,
            to: SCHEMA_VERSION,
            steps: vec!["already at the current layout; nothing to do".into()],
            backup: None,
        });
    }
    if from > SCHEMA_VERSION {
        return Err(err(
            dir,
            format!("layout version {from} is newer than this build's {SCHEMA_VERSION}"),
        ));
    }
    if staged.exists() {
        std::fs::remove_dir_all(&staged)
            .map_err(|e| err(&staged, format!("cannot remove a half-built copy: {e}")))?;
    }
    // Every older layout is a sled database: its first step reads it into the current store,
    // and every later step works on that copy.
    let old = legacy.ok_or_else(|| err(dir, format!("layout {from} should be a sled database")))?;
    let mut steps = match from {
        1 => v1_to_v2(&old, &staged)?,
        _ => copy_legacy(&old, &staged)?,
    };
    drop(old);
    if from < 3 {
        steps.extend(v2_to_v3(&staged)?);
    }
    if from < 5 {
        steps.extend(seal(&staged, master, from)?);
    }
    steps.extend(v5_to_v6(&staged)?);
    if from < 5 {
        steps.extend(compact(&staged)?);
    }
    let backup = sibling(dir, &format!("v{from}.bak"));
    if backup.exists() {
        return Err(err(
            dir,
            format!("{} exists; move it away first", backup.display()),
        ));
    }
    rename(dir, &backup)?;
    rename(&staged, dir)?;
    Ok(MigrateReport {
        from,
        to: SCHEMA_VERSION,
        steps,
        backup: Some(backup),
    })
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .map_err(|e| err(from, format!("cannot rename it to {}: {e}", to.display())))?;
    let parent = to.parent().filter(|p| !p.as_os_str().is_empty());
    std::fs::File::open(parent.unwrap_or(Path::new(".")))
        .and_then(|d| d.sync_all())
        .map_err(|e| err(to, format!("cannot sync its directory: {e}")))
}

/// A layout-1 outbox entry, read once to carry what was not yet published.
#[derive(Deserialize)]
struct V1Outbox {
    target: V1Target,
    partition: u32,
    payload: String,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum V1Target {
    ConsentEvents,
    OutboundMessages,
}

/// Layout 1 -> 2: the outbox becomes relay cursors (what it still held is published again
/// after the migration, nothing else) and a reply log; stored input offsets are dropped (the
/// consumer group's committed offsets decide where consumption resumes); dedupe entries are
/// all kept, so that no message processed before is processed twice.
fn v1_to_v2(old: &sled::Db, to: &Path) -> Result<Vec<String>> {
    let new = open_db(to)?;
    let mut steps = Vec::new();
    for name in [
        "events",
        "by_contact",
        "dedupe",
        "consent",
        "feed",
        "sent",
        "sent_by_contact",
        "delivery",
        "campaign_signals",
    ] {
        let n = super::legacy::copy_tree(old, &new, name)?;
        steps.push(format!("copied {n} entries of `{name}`"));
    }
    let (old_meta, meta) = (old.open_tree("meta")?, new.open_tree("meta")?);
    let mut heads = std::collections::BTreeMap::new();
    let mut offsets = 0u64;
    for entry in old_meta.iter() {
        let (k, v) = entry?;
        if k.starts_with(b"head/") {
            let head: super::ChainHead = super::decode("meta", &v)?;
            let partition = String::from_utf8_lossy(&k[5..]).parse::<u32>().unwrap_or(0);
            heads.insert(partition, head.seq);
            meta.insert(k, v)?;
        } else if k.starts_with(b"offset/") {
            offsets += 1;
        }
    }
    steps.push(format!(
        "copied {} chain heads; dropped {offsets} stored input offsets (the consumer group's offsets are the ones used)",
        heads.len()
    ));
    let mut first_pending = std::collections::BTreeMap::new();
    let replies = new.open_tree("replies")?;
    let mut reply_heads = std::collections::BTreeMap::new();
    for entry in old.open_tree("outbox")?.iter() {
        let (_, v) = entry?;
        let o: V1Outbox = super::decode("outbox", &v)?;
        if o.target == V1Target::ConsentEvents {
            let e: ConsentEvent = super::decode("outbox", o.payload.as_bytes())?;
            let first = first_pending.entry(e.partition).or_insert(e.seq);
            *first = (*first).min(e.seq);
        } else {
            let seq = reply_heads.entry(o.partition).or_insert(0u64);
            *seq += 1;
            replies.insert(keys::event(o.partition, *seq), o.payload.as_bytes())?;
        }
    }
    let mut pending_events = 0;
    for (partition, head) in &heads {
        let published = match first_pending.get(partition) {
            Some(first) => first - 1,
            None => *head,
        };
        pending_events += head - published;
        for sink in ["file", "kafka"] {
            meta.insert(
                keys::cursor(sink, "events", *partition),
                published.to_be_bytes(),
            )?;
        }
    }
    let mut pending_replies = 0;
    for (partition, seq) in &reply_heads {
        meta.insert(keys::reply_head(*partition), seq.to_be_bytes())?;
        pending_replies += seq;
    }
    steps.push(format!(
        "turned the outbox into relay cursors: {pending_events} events and {pending_replies} replies it had not published will be published again"
    ));
    meta.insert(keys::SCHEMA, b"2")?;
    new.flush()?;
    Ok(steps)
}

/// Copies every tree of the sled ledger `old` as it is into the store in `to`.
fn copy_legacy(old: &sled::Db, to: &Path) -> Result<Vec<String>> {
    let new = open_db(to)?;
    let mut total = 0u64;
    for name in super::legacy::tree_names(old) {
        total += super::legacy::copy_tree(old, &new, &name)?;
    }
    new.flush()?;
    Ok(vec![format!("copied {total} entries")])
}

/// Copies every tree of the store in `dir` into a new one in `to`: only live values travel.
fn copy(dir: &Path, to: &Path) -> Result<Vec<String>> {
    let old = open_db(dir)?;
    let new = open_db(to)?;
    let mut total = 0u64;
    for name in old.tree_names() {
        let (src, dst) = (old.open_tree(&name)?, new.open_tree(&name)?);
        total += new.fill(&dst, src.iter())?;
    }
    new.flush()?;
    Ok(vec![format!("copied {total} entries")])
}

/// Layout 2 -> 3: events of format 1 are re-hashed in format 2. The layout also gained
/// `IdentityLinked` events, the `links` tree, the tenant index and a view folded with the
/// opt-out winning ties: those derived trees are rebuilt from the log by the step to layout 4.
fn v2_to_v3(dir: &Path) -> Result<Vec<String>> {
    let ledger = super::store::open_any_version(dir)?;
    let steps = rehash(&ledger)?;
    ledger.meta.insert(keys::SCHEMA, b"3")?;
    ledger.sync()?;
    Ok(steps)
}

/// What `migrate` keeps of a chain it re-hashed: the head before and after, so the old head
/// (in earlier copies, in subscribers' hands) can still be tied to the chain as it is now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RehashProof {
    pub partition: u32,
    pub events: u64,
    pub old_head: super::ChainHead,
    pub new_head: super::ChainHead,
    /// Each event keeps its content and its id; only `format`, `prev_hash` and `hash` change.
    pub scheme: String,
}

/// A chain's old head, new head and event count, as a migration re-hashed it.
pub(super) type Rehashed = (super::ChainHead, super::ChainHead, u64);

/// Records each re-hashed chain: its new head in `meta`, and under `migration/v{layout}/P` the
/// proof that links its old head to the new one (also printed as a step), so that whoever
/// holds the old chain can check the new one continues it.
pub(super) fn record_rehash(
    ledger: &super::Ledger,
    layout: u32,
    scheme: &str,
    chains: std::collections::BTreeMap<u32, Rehashed>,
    steps: &mut Vec<String>,
) -> Result<()> {
    for (partition, (old_head, new_head, events)) in chains {
        ledger.meta.insert(
            keys::head(partition),
            serde_json::to_vec(&new_head).expect("plain struct"),
        )?;
        let proof = RehashProof {
            partition,
            events,
            old_head,
            new_head,
            scheme: scheme.into(),
        };
        let json = serde_json::to_string(&proof).expect("plain struct");
        ledger.meta.insert(
            format!("migration/v{layout}/{partition:010}"),
            json.as_bytes(),
        )?;
        steps.push(format!("re-hashed partition {partition}: {json}"));
    }
    Ok(())
}

/// Events of format 1 are re-sealed in format 2 (RFC 8785 canonical JSON in a digest chain),
/// partition by partition, in chain order. The proof of each chain is kept in `meta` under
/// `migration/v3/P` and printed.
fn rehash(ledger: &super::Ledger) -> Result<Vec<String>> {
    let mut steps = Vec::new();
    let mut chains: std::collections::BTreeMap<u32, Rehashed> = Default::default();
    let mut batch = ledger.db.batch();
    for entry in ledger.events.iter() {
        let (key, bytes) = entry?;
        let mut event: ConsentEvent = super::decode("events", &bytes)?;
        let (old, new, n) = chains.entry(event.partition).or_default();
        *old = super::ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        event.format = crate::domain::event::FORMAT_2;
        event.seal(&new.hash);
        *new = super::ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        *n += 1;
        batch.insert(&ledger.events, key, event.stored_bytes());
    }
    batch.commit()?;
    record_rehash(
        ledger,
        3,
        "format 1 (serde field order) -> format 2 (RFC 8785 digest chain)",
        chains,
        &mut steps,
    )?;
    Ok(steps)
}

/// The steps that need the keys, from layout `from` (3 or 4) on, on one open of the copy.
fn seal(dir: &Path, master: MasterKey, from: u32) -> Result<Vec<String>> {
    let ledger = super::store::open_unchecked(dir, master)?;
    let mut steps = Vec::new();
    if from < 4 {
        steps.extend(v3_to_v4(&ledger)?);
    }
    steps.extend(v4_to_v5(&ledger)?);
    Ok(steps)
}

/// Layout 3 -> 4: personal fields sealed. Every event is re-sealed in format 3 (its
/// identifiers and text sealed under data keys created now, then re-hashed in chain order:
/// the proof of each chain, old head to new head, is kept under `migration/v4/P`); every
/// index that held an identifier is rebuilt under keyed hashes (`by_contact`, `consent`,
/// `links`, `sent_by_contact`); sent records keep a keyed hash of their recipient; replies
/// their recipient sealed. Heads signed before are dropped (they sign the old hashes; the
/// proof ties those to the new ones), and the keys of identifiers on the suppression list are
/// destroyed again, since their fields were in clear until now.
fn v3_to_v4(ledger: &super::Ledger) -> Result<Vec<String>> {
    let mut steps = super::migrate_v4::seal_all(ledger)?;
    ledger.meta.insert(keys::SCHEMA, b"4")?;
    ledger.sync()?;
    steps.push("storage layout 4: personal fields sealed, indexes keyed by HMAC".into());
    Ok(steps)
}

/// Layout 4 -> 5: message ids sealed. Every event's `source.message_id` and
/// `source.context_message_id` are sealed under the identity key of the identifier they came
/// with (`[erased]` where that key was destroyed), then each chain is re-hashed (proof under
/// `migration/v5/P`); replies' `in_reply_to` sealed like their recipient; `dedupe`, `sent`,
/// `sent_by_contact`, `delivery` and `campaign_signals` re-keyed by the message id's HMAC.
/// Heads signed before are dropped, as in the step to layout 4.
fn v4_to_v5(ledger: &super::Ledger) -> Result<Vec<String>> {
    let mut steps = super::migrate_v5::seal_message_ids(ledger)?;
    ledger.meta.insert(keys::SCHEMA, b"5")?;
    ledger.sync()?;
    steps.push("storage layout 5: message ids sealed, indexes of message ids keyed by HMAC".into());
    Ok(steps)
}

/// Layout 5 -> 6: the same trees and rows, in fjall instead of sled (the copy made by the
/// first step); only the version changes.
fn v5_to_v6(dir: &Path) -> Result<Vec<String>> {
    let db = open_db(dir)?;
    db.open_tree("meta")?
        .insert(keys::SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
    db.flush()?;
    Ok(vec![format!(
        "storage layout {SCHEMA_VERSION}: the same trees in fjall, whose journal makes a batch durable with one fsync"
    )])
}

/// Rewrites `dir` as a fresh database holding only its live entries: the store appends, so
/// the fields sealed in place would otherwise stay in clear in its journal and older tables.
fn compact(dir: &Path) -> Result<Vec<String>> {
    let fresh = sibling(dir, "compact");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)
            .map_err(|e| err(&fresh, format!("cannot remove a half-built copy: {e}")))?;
    }
    copy(dir, &fresh)?;
    std::fs::remove_dir_all(dir).map_err(|e| err(dir, format!("cannot remove it: {e}")))?;
    rename(&fresh, dir)?;
    Ok(vec![
        "rewrote the database without the values sealing replaced, so no copy of them is left in it".into(),
    ])
}

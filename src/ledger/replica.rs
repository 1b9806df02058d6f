//! What scale-out puts on the record topic, and how another instance's ledger takes it in.
//!
//! A batch travels as its *primary* facts: each event in its stored form (personal fields
//! sealed), and the rows no event implies (dedupe marks, campaign sends, delivery statuses,
//! signals). Everything derived (the consent view, `by_contact`, `links`, the feed) is
//! derived again by the instance that adopts the event, with the same code that derived it
//! for the writer ([`Staged::append`] and [`Staged::adopt`] share [`Staged::index`]), so two
//! instances never disagree on a view whose rows one of them merely copied.
//!
//! Keys in rows are keyed hashes under the deployment's index secret, which every instance
//! shares through the key topic; data keys travel there too, wrapped, never here.

use super::batch::Staged;
use super::keyring::with_id;
use super::{decode, ChainHead, Ledger, LedgerError, Result};
use crate::domain::event::{ConsentEvent, EventType};
use crate::domain::replies::OutboundMessage;

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain struct")
}

/// The trees whose rows travel as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowTree {
    Dedupe = 1,
    Sent = 2,
    SentByContact = 3,
    Delivery = 4,
    Signals = 5,
    /// Suppression entries an erasure wrote (`erase.rs`); an opt-in's lifting of one is
    /// derived again from the opt-in by whoever adopts it.
    Suppressed = 6,
}

impl RowTree {
    fn from_tag(tag: u8) -> Option<RowTree> {
        Some(match tag {
            1 => RowTree::Dedupe,
            2 => RowTree::Sent,
            3 => RowTree::SentByContact,
            4 => RowTree::Delivery,
            5 => RowTree::Signals,
            6 => RowTree::Suppressed,
            _ => return None,
        })
    }
}

/// One row: its tree, key and value.
pub type Row<'a> = (RowTree, &'a [u8], &'a [u8]);

/// Rows of a batch, in one flat encoding: for each row its tree's tag (one byte), then the
/// key and the value, each as a u32 big-endian length and the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows(Vec<u8>);

impl Rows {
    pub fn push(&mut self, tree: RowTree, key: &[u8], value: &[u8]) {
        self.0.push(tree as u8);
        for part in [key, value] {
            self.0
                .extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            self.0.extend_from_slice(part);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len_bytes(&self) -> usize {
        self.0.len()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Every row; an error, never a panic, on bytes that are not rows.
    pub fn decode(bytes: &[u8]) -> Result<Vec<Row<'_>>> {
        let corrupt = |detail: &str| LedgerError::Corrupt {
            tree: "record topic rows",
            detail: detail.into(),
        };
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some((&tag, after)) = rest.split_first() {
            let tree = RowTree::from_tag(tag).ok_or_else(|| corrupt("unknown tree tag"))?;
            let mut parts = [&[][..]; 2];
            rest = after;
            for part in &mut parts {
                let (len, after) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| corrupt("truncated length"))?;
                let len = u32::from_be_bytes(*len) as usize;
                if after.len() < len {
                    return Err(corrupt("truncated row"));
                }
                (*part, rest) = after.split_at(len);
            }
            out.push((tree, parts[0], parts[1]));
        }
        Ok(out)
    }
}

/// What a batch puts on the record topic and the key topic.
pub struct Replica<'s> {
    /// Each event staged: its partition, its seq, its stored bytes, and it opened (for the
    /// subscriber feed of the same transaction).
    pub events: Vec<(u32, u64, &'s [u8], &'s ConsentEvent)>,
    pub rows: Rows,
    /// Data keys the batch created: the key-topic record's key (slot and key id) and the
    /// wrapped key. Not the notice keys of `Erased` events: the transaction publishes what
    /// they open, so they are never shared and never stored (`forget_notices`); nor keys the
    /// same batch destroys.
    pub keys: Vec<(Vec<u8>, &'s [u8])>,
    /// The key-topic records of the data keys the batch destroyed (an erasure): tombstones.
    pub destroyed: Vec<Vec<u8>>,
    /// Replies to the customer, opened: the outbound topic partitions them by their key.
    pub replies: Vec<&'s OutboundMessage>,
}

/// How adopting one event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// Appended to its chain and folded into the view.
    Appended,
    /// This ledger holds it already (this instance wrote it, or read it before).
    Known,
    /// A key that opens it has not arrived yet from the key topic: try again later.
    MissingKey,
}

impl Staged<'_> {
    /// Takes in an event another instance sealed on `partition`'s chain: it must continue the
    /// chain exactly (its seq the next, its `prev_hash` the head's hash, its hash its own),
    /// else the record topic and this ledger disagree and nothing is written.
    ///
    /// It is indexed by the keyed hashes its sealed fields carry, never opened: the view is
    /// the same whichever data keys this instance holds. Its keys matter to readers only, so
    /// until `keys_final` (the key topic read to where it stood once this event was
    /// committed) an event whose identity keys are not here yet waits for them; after that a
    /// missing key was destroyed (the person erased since) and the event is taken in as is.
    pub fn adopt(
        &mut self,
        partition: u32,
        stored_bytes: &[u8],
        keys_final: bool,
    ) -> Result<Adopted> {
        let stored: ConsentEvent = decode("events", stored_bytes)?;
        let head = self.head_of(partition)?;
        if stored.partition != partition {
            return Err(chain_error(
                partition,
                &stored,
                "it names another partition",
            ));
        }
        if stored.seq <= head.seq {
            return Ok(Adopted::Known);
        }
        if stored.seq != head.seq + 1 || stored.prev_hash != head.hash {
            return Err(chain_error(
                partition,
                &stored,
                &format!("it does not follow seq {} of this ledger", head.seq),
            ));
        }
        if stored.compute_hash() != stored.hash || !stored.is_stored_as(stored_bytes) {
            return Err(chain_error(
                partition,
                &stored,
                "its hash does not match it",
            ));
        }
        let notice = stored.event_type == EventType::Erased;
        if !notice && !keys_final && !self.ledger().keys_present(&stored)? {
            return Ok(Adopted::MissingKey);
        }
        self.set_head(
            partition,
            ChainHead {
                seq: stored.seq,
                hash: stored.hash.clone(),
            },
        );
        self.index_sealed(stored, stored_bytes.to_vec())?;
        Ok(Adopted::Appended)
    }

    /// What this batch puts on the record topic, before it is written here.
    pub fn replica(&self) -> Result<Replica<'_>> {
        let mut rows = Rows::default();
        for (k, v) in &self.dedupe {
            rows.push(RowTree::Dedupe, k, v);
        }
        for (k, v) in &self.sent {
            rows.push(RowTree::Sent, k, &json(v));
        }
        for (k, v) in &self.sent_by_contact {
            rows.push(RowTree::SentByContact, k, &json(v));
        }
        for (k, v) in &self.delivery {
            rows.push(RowTree::Delivery, k, &json(v));
        }
        for (k, v) in &self.signals {
            rows.push(RowTree::Signals, k, v);
        }
        for (k, v) in &self.suppress {
            if let Some(v) = v {
                rows.push(RowTree::Suppressed, k, v);
            }
        }
        Ok(Replica {
            events: self
                .events
                .iter()
                .zip(&self.stored)
                .map(|(e, s)| (e.partition, e.seq, s.as_slice(), e))
                .collect(),
            rows,
            keys: self
                .new_keys
                .iter()
                .filter(|(k, _)| !is_notice_slot(k) && !self.destroy.contains(*k))
                .map(|(k, v)| {
                    let key = self.key_cache.get(k).ok_or_else(|| LedgerError::Corrupt {
                        tree: "keys",
                        detail: "a key the batch made is not in its cache".into(),
                    })?;
                    Ok((with_id(k, &key.id()), v.as_slice()))
                })
                .collect::<Result<_>>()?,
            destroyed: self
                .destroy
                .iter()
                .map(|slot| self.ledger().key_records(slot))
                .collect::<Result<Vec<_>>>()?
                .concat(),
            replies: self.opened_replies.iter().collect(),
        })
    }

    fn stage_row(&mut self, tree: RowTree, key: &[u8], value: &[u8]) -> Result<()> {
        let key = key.to_vec();
        match tree {
            RowTree::Dedupe => {
                self.seen.insert(key.clone());
                self.dedupe.push((key, value.to_vec()));
            }
            RowTree::Sent => {
                self.sent.insert(key, decode("sent", value)?);
            }
            RowTree::SentByContact => {
                self.sent_by_contact
                    .insert(key, decode("sent_by_contact", value)?);
            }
            RowTree::Delivery => {
                self.delivery.insert(key, decode("delivery", value)?);
            }
            RowTree::Signals => self.signals.push((key, value.to_vec())),
            RowTree::Suppressed => {
                self.suppress.insert(key, Some(value.to_vec()));
            }
        }
        Ok(())
    }

    /// Takes in rows another instance wrote; rows already here are written again, unchanged.
    pub fn adopt_rows(&mut self, rows: &[u8]) -> Result<usize> {
        let rows = Rows::decode(rows)?;
        for (tree, key, value) in &rows {
            self.stage_row(*tree, key, value)?;
        }
        Ok(rows.len())
    }

    /// Once the transaction published the batch: the notice keys of its `Erased` events opened
    /// the feed's copy only, which is out, so they are not stored and nothing waits to
    /// release them. The events' identifiers are unreadable from now on, as an erasure wants.
    pub fn forget_notices(&mut self) {
        self.new_keys.retain(|k, _| !is_notice_slot(k));
        self.notices.clear();
    }

    /// Records that the record topic's `partition` is taken in up to `next` (excluded), in
    /// the same atomic write as what was taken in.
    pub fn set_view_cursor(&mut self, topic_partition: i32, next: i64) {
        self.view_cursors.insert(topic_partition, next);
    }
}

fn chain_error(partition: u32, stored: &ConsentEvent, why: &str) -> LedgerError {
    LedgerError::Corrupt {
        tree: "record topic",
        detail: format!(
            "event {} at seq {} of partition {partition} cannot be taken in: {why}",
            stored.event_id, stored.seq
        ),
    }
}

fn is_notice_slot(slot: &[u8]) -> bool {
    slot.first() == Some(&b'n')
}

pub(super) fn view_cursor_key(topic_partition: i32) -> Vec<u8> {
    format!("view/{topic_partition:010}").into_bytes()
}

impl Ledger {
    /// The next offset of the record topic's `partition` this ledger has not taken in.
    pub fn view_cursor(&self, topic_partition: i32) -> Result<i64> {
        Ok(self
            .meta
            .get(view_cursor_key(topic_partition))?
            .and_then(|v| {
                v.get(..8)
                    .map(|b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
            })
            .unwrap_or(0))
    }

    /// Whether this ledger holds no event and no data key: a new instance's, which may still
    /// take the deployment's index secret.
    pub fn is_fresh(&self) -> Result<bool> {
        Ok(self.events.is_empty()? && self.keys.scan_prefix(b"d").next().is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rows_round_trip() {
        let mut rows = Rows::default();
        rows.push(RowTree::Dedupe, b"acme\0k", b"");
        rows.push(RowTree::Delivery, b"", b"{\"a\":1}");
        let decoded = Rows::decode(rows.as_bytes()).unwrap();
        assert_eq!(
            decoded,
            vec![
                (RowTree::Dedupe, &b"acme\0k"[..], &b""[..]),
                (RowTree::Delivery, &b""[..], &b"{\"a\":1}"[..]),
            ]
        );
    }

    #[test]
    fn truncated_or_unknown_rows_are_an_error() {
        let mut rows = Rows::default();
        rows.push(RowTree::Sent, b"key", b"value");
        let bytes = rows.as_bytes();
        for cut in 1..bytes.len() {
            assert!(Rows::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Rows::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    /// Two ledgers of one deployment (the same master key and index secret), each of which
    /// has taken the same contact's STOP under its own data key; returns them with `a`'s
    /// stored event.
    fn two_instances_with_one_contact() -> (Vec<tempfile::TempDir>, Ledger, Ledger, Vec<u8>) {
        use crate::config::{ConfigFile, Settings};
        use crate::pipeline::file::{ingest, FileSinks};

        let settings = Settings::from_file(ConfigFile::default()).unwrap();
        let dirs = vec![tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let a = instance_of(&dirs[0], None);
        let b = instance_of(&dirs[1], Some(&a));
        let stop = |id: &str| {
            format!(
                r#"{{"type":"inbound","tenant":"acme","channel":"sms","message_id":"{id}","from":"+33612000001","received_at":"2026-11-20T10:00:00Z","text":"STOP"}}"#
            )
        };
        for (ledger, dir, id) in [(&a, &dirs[0], "m-a"), (&b, &dirs[1], "m-b")] {
            let mut sinks = FileSinks::in_dir(dir.path(), None);
            ingest(ledger, &settings, stop(id).as_bytes(), "test", &mut sinks).unwrap();
        }
        let stored = a.events.iter().next().unwrap().unwrap().1.to_vec();
        (dirs, a, b, stored)
    }

    /// A new instance's ledger in `dir`, with the deployment's master key and, after the
    /// first, the index secret of `first`.
    fn instance_of(dir: &tempfile::TempDir, first: Option<&Ledger>) -> Ledger {
        let master =
            crate::rgpd::MasterKey::from_base64("c2NhbGUtb3V0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=")
                .unwrap();
        let l = Ledger::open(&dir.path().join("ledger"), master).unwrap();
        if let Some(first) = first {
            l.adopt_index_secret(&first.wrapped_index_secret().unwrap())
                .unwrap();
        }
        l
    }

    /// Adopts `bytes` on `partition` of `l`, whose keys do not open it: it waits while they
    /// may still come, and is taken in once they are final.
    fn adopt_once_the_keys_are_final(l: &Ledger, partition: u32, bytes: &[u8]) {
        let mut staged = l.stage();
        let waits = staged.adopt(partition, bytes, false).unwrap();
        assert_eq!(waits, Adopted::MissingKey);
        let taken = staged.adopt(partition, bytes, true).unwrap();
        assert_eq!(taken, Adopted::Appended);
        staged.commit().unwrap();
    }

    /// The marketing fold of the contact: how many events it counts, all of them STOPs.
    fn marketing_events(l: &Ledger) -> u64 {
        use crate::domain::consent::Status;
        let tenant = crate::domain::tenant::TenantId::new("acme").unwrap();
        let contact = crate::domain::contact::Contact::from_stored("+33612000001".into());
        let marketing = l.own_consent(&tenant, &contact).unwrap().marketing;
        assert_eq!(marketing.status, Status::OptedOut);
        marketing.events
    }

    /// Regression test for scale-out's key race (two instances made data keys for one new
    /// identifier at once): the other instance's event is folded into the view by the keyed
    /// hash it carries, whichever keys are here; before, it was refused and the service
    /// stopped.
    #[test]
    fn an_event_sealed_under_another_instances_key_is_folded_by_its_keyed_hash() {
        let (_dirs, _a, b, stored) = two_instances_with_one_contact();
        // On b, a's event continues an empty chain 1 (b's own event is on chain 0).
        let mut event: ConsentEvent = decode("events", &stored).unwrap();
        event.partition = 1;
        event.seal(&ChainHead::default().hash);
        let bytes = event.stored_bytes();
        // b's own key for the contact does not open it: it waits for a's key while that may
        // still come, then is taken in all the same.
        adopt_once_the_keys_are_final(&b, 1, &bytes);
        assert_eq!(marketing_events(&b), 2, "b's STOP and a's, one identifier");
    }

    /// Regression test: an instance that joins after an erasure finds the person's events
    /// sealed under keys that were destroyed. They wait while the keys may still come, then
    /// are taken in; before, they waited for ever and the instance never got ready.
    #[test]
    fn an_event_whose_key_is_gone_is_taken_in_once_the_keys_are_final() {
        let (_dirs, a, _b, stored) = two_instances_with_one_contact();
        let dir = tempfile::tempdir().unwrap();
        let c = instance_of(&dir, Some(&a));
        adopt_once_the_keys_are_final(&c, 0, &stored);
        assert_eq!(marketing_events(&c), 1, "folded without its key");
    }

    /// Regression test for scale-out's key race, the fields' side: two instances that made
    /// a key each for one new identifier keep both, so that every event of it opens on both
    /// (before, the key topic's later record replaced the other key, whose events then read
    /// `[erased]` everywhere); erasing the identifier destroys and tombstones both.
    #[test]
    fn two_keys_made_at_once_for_one_identifier_both_open_everywhere() {
        use super::super::keyring::slot;
        use crate::domain::contact::Contact;
        use crate::domain::tenant::TenantId;
        use crate::rgpd::KeyKind;

        let (_dirs, a, b, stored_a) = two_instances_with_one_contact();
        let stored_b = b.events.iter().next().unwrap().unwrap().1.to_vec();
        let tenant = TenantId::new("acme").unwrap();
        let id = a
            .digest(&tenant, &Contact::from_stored("+33612000001".into()))
            .unwrap();
        let identity = slot(&tenant, &id, KeyKind::Identity);
        for kind in [KeyKind::Identity, KeyKind::Text] {
            let slot = slot(&tenant, &id, kind);
            for (from, to) in [(&a, &b), (&b, &a)] {
                let key = from.stored_key(&slot).unwrap().unwrap();
                let wrapped = from.keys.get(&slot).unwrap().unwrap();
                for _ in 0..2 {
                    to.adopt_key(&with_id(&slot, &key.id()), Some(&wrapped))
                        .unwrap();
                }
            }
            assert_eq!(a.key_entries(&slot).unwrap().len(), 2, "one each, once");
        }
        for l in [&a, &b] {
            for stored in [&stored_a, &stored_b] {
                let e = l.open_event(decode("events", stored).unwrap()).unwrap();
                assert_eq!(e.contact.as_str(), "+33612000001");
                assert_eq!(e.source.text.as_deref(), Some("STOP"));
            }
        }
        // A proof file names the second key by its slot and id, beside the first.
        let names: Vec<String> = a
            .field_keys(&decode("events", &stored_b).unwrap())
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert!(
            !names.is_empty() && names.iter().all(|n| n.matches(':').count() == 2),
            "{names:?}"
        );
        // The tombstone of one key removes that key only.
        let b_key = b.stored_key(&identity).unwrap().unwrap();
        a.adopt_key(&with_id(&identity, &b_key.id()), None).unwrap();
        assert_eq!(a.key_entries(&identity).unwrap(), vec![identity.clone()]);
        // Destroying the slot destroys every key of it and tombstones every record of it.
        let mut staged = b.stage();
        staged.destroy.insert(identity.clone());
        let destroyed = staged.replica().unwrap().destroyed;
        assert_eq!(destroyed.len(), 3, "the slot alone, and each key by its id");
        staged.commit().unwrap();
        assert!(b.key_entries(&identity).unwrap().is_empty());
    }

    #[test]
    fn key_topic_record_names_read_back() {
        use super::super::keyring::split_record;
        let slot = [b"dacme\0".as_slice(), &[7u8; 32], b"i"].concat();
        assert_eq!(split_record(&slot), Some((slot.as_slice(), None)));
        let named = with_id(&slot, "00112233aabbccdd");
        assert_eq!(
            split_record(&named),
            Some((slot.as_slice(), Some("00112233aabbccdd")))
        );
        for bad in [
            &b"index/abc"[..],
            b"d",
            &named[..named.len() - 1],
            b"nacme\0x",
        ] {
            assert_eq!(split_record(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Rows::decode(&bytes);
            let _ = super::super::keyring::split_record(&bytes);
        }
    }
}

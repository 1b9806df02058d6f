//! Signed chain heads, kept beside the chains in their own tree (`signed_heads`: partition
//! ++ seq → `SignedHead` JSON), not as events in them. A head is signed after a commit once
//! its chain has grown by [`SIGN_EVERY`] events since the last signed head, and on demand when
//! an export needs one, so the chain segment a proof carries stays short.

use chrono::{DateTime, Utc};

use super::{decode, keys, ChainHead, Ledger, LedgerError, Result};
use crate::proof::{SignedHead, Signer};

/// Events a chain may grow by before its head is signed again after a commit.
pub const SIGN_EVERY: u64 = 1000;

impl Ledger {
    /// Signs heads with `signer` from now on. Without one, no head is signed and an export
    /// with proofs is refused.
    pub fn sign_with(&self, signer: Signer) {
        let _ = self.signer.set(signer);
    }

    pub fn signer(&self) -> Option<&Signer> {
        self.signer.get()
    }

    /// The last signed head of `partition`.
    fn last_signed(&self, partition: u32) -> Result<Option<SignedHead>> {
        let prefix = partition.to_be_bytes();
        match self.signed_heads.scan_prefix(prefix).next_back() {
            Some(entry) => Ok(Some(decode("signed_heads", &entry?.1)?)),
            None => Ok(None),
        }
    }

    /// After a commit: signs each of `heads` whose chain grew by [`SIGN_EVERY`] events since
    /// its last signed head (or has none). Not part of the batch's durability: a head signed
    /// late is signed at the next commit or export.
    pub(super) fn sign_due(&self, heads: &[(u32, ChainHead)], now: DateTime<Utc>) -> Result<()> {
        let Some(signer) = self.signer() else {
            return Ok(());
        };
        for (partition, head) in heads {
            let last = self.last_signed(*partition)?.map(|h| h.seq).unwrap_or(0);
            if last == 0 || head.seq >= last + SIGN_EVERY {
                self.store_signed(signer.sign_head(*partition, head.seq, &head.hash, now))?;
            }
        }
        Ok(())
    }

    fn store_signed(&self, head: SignedHead) -> Result<SignedHead> {
        self.signed_heads.insert(
            keys::event(head.partition, head.seq),
            serde_json::to_vec(&head).expect("plain struct"),
        )?;
        Ok(head)
    }

    /// The first signed head of `partition` at or after `seq`; the current head is signed now
    /// when none is (the events after the last signed head), and made durable.
    pub fn signed_head_covering(
        &self,
        partition: u32,
        seq: u64,
        now: DateTime<Utc>,
    ) -> Result<SignedHead> {
        let range = keys::event(partition, seq)..=keys::event(partition, u64::MAX);
        if let Some(entry) = self.signed_heads.range(range).next() {
            return decode("signed_heads", &entry?.1);
        }
        let signer = self.signer().ok_or_else(|| LedgerError::Corrupt {
            tree: "signed_heads",
            detail: "no signing key: heads cannot be signed".into(),
        })?;
        let head = self.chain_head(partition)?;
        let signed = self.store_signed(signer.sign_head(partition, head.seq, &head.hash, now))?;
        self.sync()?;
        Ok(signed)
    }

    /// The hash of event `seq` of `partition` (the genesis hash for seq 0).
    pub fn hash_at(&self, partition: u32, seq: u64) -> Result<String> {
        if seq == 0 {
            return Ok(crate::domain::event::GENESIS_HASH.to_string());
        }
        Ok(self.event_at(partition, seq)?.hash)
    }

    /// Event `seq` of `partition`.
    pub fn event_at(&self, partition: u32, seq: u64) -> Result<crate::domain::event::ConsentEvent> {
        let bytes = self
            .events
            .get(keys::event(partition, seq))?
            .ok_or_else(|| LedgerError::Corrupt {
                tree: "events",
                detail: format!("partition {partition} has no event {seq}"),
            })?;
        decode("events", &bytes)
    }
}

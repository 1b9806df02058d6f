//! What a run of the pipeline did: the `ingest --json` summary and the log line of a batch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::decide::Outcome;

/// What an ingest run did (`ingest --json`, schemas/ingest-summary.v1.json).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Records (lines or Kafka messages) read.
    pub read: u64,
    /// Messages that asked to opt out (each appended an event, repeated or not).
    pub opted_out: u64,
    pub opted_in: u64,
    pub help: u64,
    /// Messages with no consent meaning (ordinary chat), redelivered ones included: they
    /// leave nothing durable, so a redelivery is not told apart.
    pub no_change: u64,
    /// A keyword inside a sentence ("don't stop"): no change, kept for review.
    pub possible_opt_out: u64,
    /// Redelivered messages that had already produced an event or a reply.
    pub duplicates: u64,
    /// Records or messages sent to the dead-letter output.
    pub rejected: u64,
    /// Valid items without consent or analytics meaning: unbilled statuses, media, reactions.
    pub ignored: u64,
    /// Events appended to the ledger (consent and link events).
    pub events: u64,
    /// `IdentityLinked` events among them: two identifiers of one person seen together for the
    /// first time.
    #[serde(default)]
    pub links: u64,
    /// Replies (confirmations, help) queued for the customer.
    pub replies: u64,
    /// Sent records stored for campaign analytics (redeliveries count as duplicates).
    pub sent: u64,
    /// WhatsApp delivery statuses of billed (campaign) messages recorded for analytics.
    pub statuses: u64,
    /// Messages whose own time was out of the clock bounds, unreadable or missing: processed
    /// at their recording time, the claim kept in `source.claimed_time`.
    pub clock_corrected: u64,
}

impl Summary {
    pub fn add(&mut self, other: &Summary) {
        self.read += other.read;
        self.opted_out += other.opted_out;
        self.opted_in += other.opted_in;
        self.help += other.help;
        self.no_change += other.no_change;
        self.possible_opt_out += other.possible_opt_out;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.ignored += other.ignored;
        self.events += other.events;
        self.links += other.links;
        self.replies += other.replies;
        self.sent += other.sent;
        self.statuses += other.statuses;
        self.clock_corrected += other.clock_corrected;
    }

    pub(crate) fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::OptedOut => self.opted_out += 1,
            Outcome::OptedIn => self.opted_in += 1,
            Outcome::Help => self.help += 1,
            Outcome::NoChange => self.no_change += 1,
            Outcome::PossibleOptOut => self.possible_opt_out += 1,
        }
    }
}

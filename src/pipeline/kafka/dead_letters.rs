//! A batch's dead letters to the dead-letter topic: produced together and acknowledged once,
//! since their offsets are about to be committed and one round trip per record would let a
//! burst of bad input hold up every STOP behind it.
//!
//! No dead letter may hold its partition up. One too large to travel whole (over the
//! producer's `message.max.bytes`, or the topic's limit) goes as a truncated copy that keeps
//! the reason, the original's size and SHA-256 and its first [`EXCERPT_BYTES`], and says so in
//! `dlq.truncated`; if even that is refused for its size, the headers go alone. Any other
//! refusal (the broker down, a missing permission) is retried with backoff until the service
//! stops: then the batch is left uncommitted, and its records are read again on the next start.
//!
//! In scale-out the dead letters are part of the batch's transaction, and a refusal the broker
//! sends back dooms that transaction: no retry inside it can succeed. So the first such
//! refusal fails the batch at once, and the writer aborts it and reads it again
//! (`rewind.rs`), each dead letter starting a size smaller than the time before (a dead-letter
//! topic whose `max.message.bytes` is below the producer's). A copy cut smaller for the
//! client's own size limit never reached the transaction and is still sent again at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::metrics::{Metrics, ReasonLabels};
use crate::pipeline::commit::{CommitError, Dead};
use crate::pipeline::deadletter::{clip, Excerpt, EXCERPT_BYTES};

/// How much of a key or reason a truncated copy keeps: a key is an id, a reason a sentence;
/// anything longer is the hostile record quoting itself.
const SMALL_FIELD_BYTES: usize = 1024;

/// How much of the original a dead letter carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    Whole,
    /// An [`Excerpt`] of this many bytes.
    Head(usize),
}

impl Cut {
    /// The copy to start with after `refused` transactions in a row ended on a dead letter
    /// the broker refused: each one starts a size smaller.
    pub(super) fn after(refused: u8) -> Cut {
        match refused {
            0 => Cut::Whole,
            1 => Cut::Head(EXCERPT_BYTES),
            _ => Cut::Head(0),
        }
    }

    /// The next smaller copy, after a refusal for size; `None` when nothing is left to cut.
    fn smaller(self) -> Option<Cut> {
        match self {
            Cut::Whole => Some(Cut::Head(EXCERPT_BYTES)),
            Cut::Head(n) if n > 0 => Some(Cut::Head(0)),
            Cut::Head(_) => None,
        }
    }
}

pub(super) struct DeadLetters<'a> {
    pub producer: &'a FutureProducer,
    pub topic: &'a str,
    pub metrics: &'a Metrics,
    /// Set when the service stops: refused dead letters are then no longer retried.
    pub stopping: &'a AtomicBool,
    /// Scale-out: produced inside the batch's transaction.
    pub in_transaction: bool,
    /// The copy each dead letter starts as: smaller than whole when this batch's last
    /// transaction was refused over a dead letter, since a refusal inside a transaction
    /// cannot be retried smaller in it.
    pub first_cut: Cut,
}

/// Why one send did not end acknowledged.
enum Refused {
    TooLarge,
    Other(KafkaError),
}

impl DeadLetters<'_> {
    /// Returns once every dead letter is acknowledged, or fails when the service stops first.
    pub fn produce(&self, dead: &[Dead<'_>], now: DateTime<Utc>) -> Result<(), CommitError> {
        let mut todo: Vec<(&Dead<'_>, Cut)> = dead.iter().map(|d| (d, self.first_cut)).collect();
        let mut backoff = Duration::from_millis(100);
        while !todo.is_empty() {
            let outcomes = self.send_all(&todo, now);
            let mut again = Vec::new();
            let mut last_error = None;
            for ((d, cut), outcome) in todo.into_iter().zip(outcomes) {
                match outcome {
                    Ok(()) => count(self.metrics, d, cut),
                    Err(Refused::TooLarge) => match cut.smaller() {
                        Some(smaller) => again.push((d, smaller)),
                        None => {
                            last_error = Some("too large even as headers alone".to_string());
                            again.push((d, cut));
                        }
                    },
                    Err(Refused::Other(e)) => {
                        last_error = Some(e.to_string());
                        again.push((d, cut));
                    }
                }
            }
            todo = again;
            // A copy cut smaller goes again at once; a refusal of another kind waits.
            let Some(error) = last_error else { continue };
            if self.in_transaction {
                return Err(CommitError::DeadLetters {
                    sink: format!("topic {}", self.topic),
                    detail: format!(
                        "{} refused inside the batch's transaction ({error}); the batch is aborted and read again",
                        todo.len()
                    ),
                });
            }
            tracing::warn!(
                pending = todo.len(),
                topic = %self.topic,
                %error,
                "dead letters not acknowledged; retrying"
            );
            if !self.wait(backoff) {
                return Err(CommitError::DeadLetters {
                    sink: format!("topic {}", self.topic),
                    detail: format!(
                        "{} not acknowledged when the service stopped ({error}); their records are read again on the next start",
                        todo.len()
                    ),
                });
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        Ok(())
    }

    /// Sends every dead letter at once and waits for all the answers, in order.
    fn send_all(&self, todo: &[(&Dead<'_>, Cut)], now: DateTime<Utc>) -> Vec<Result<(), Refused>> {
        let sends: Vec<_> = todo
            .iter()
            .map(|(d, cut)| self.send(d, *cut, now))
            .collect();
        futures::executor::block_on(join_all(sends.into_iter().map(|sent| async move {
            match sent?.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(refused(e)),
                Err(_) => Err(Refused::Other(KafkaError::Canceled)),
            }
        })))
    }

    fn send(
        &self,
        d: &Dead<'_>,
        cut: Cut,
        now: DateTime<Utc>,
    ) -> Result<rdkafka::producer::DeliveryFuture, Refused> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(self.topic);
        let (key, payload, headers) = match cut {
            Cut::Whole => (d.key, d.bytes, headers(d, now, None)),
            Cut::Head(keep) => {
                let excerpt = d.bytes.map(|b| Excerpt::of(b, keep));
                let key = d.key.map(|k| &k[..k.len().min(SMALL_FIELD_BYTES)]);
                let payload = excerpt.as_ref().map(|e| e.head);
                (key, payload, headers(d, now, Some(excerpt.as_ref())))
            }
        };
        record = record.headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.producer
            .send_result(record)
            .map_err(|(e, _)| refused(e))
    }

    /// Sleeps `how_long`, or less when the service stops; false once it is stopping.
    fn wait(&self, how_long: Duration) -> bool {
        let until = Instant::now() + how_long;
        while Instant::now() < until {
            if self.stopping.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        !self.stopping.load(Ordering::SeqCst)
    }
}

fn refused(e: KafkaError) -> Refused {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge) => {
            Refused::TooLarge
        }
        _ => Refused::Other(e),
    }
}

fn count(metrics: &Metrics, d: &Dead<'_>, cut: Cut) {
    tracing::warn!(
        topic = d.origin.topic.as_deref().unwrap_or_default(),
        partition = d.origin.kafka_partition,
        offset = d.origin.offset,
        code = d.rejection.error.code(),
        truncated = cut != Cut::Whole,
        "record dead-lettered"
    );
    metrics
        .dead_lettered
        .get_or_create(&ReasonLabels {
            reason: d.rejection.error.code().to_string(),
        })
        .inc();
}

/// Why and where from: the reason, its code, the JSON pointer of the rejected part, the
/// source position and the time, as `dlq.*` headers next to the original key and bytes. A
/// truncated copy (`excerpt` given: `Some(None)` for a tombstone) also says `dlq.truncated`,
/// the original's size and SHA-256, and keeps only the start of a long reason.
fn headers(
    d: &Dead<'_>,
    now: DateTime<Utc>,
    excerpt: Option<Option<&Excerpt<'_>>>,
) -> OwnedHeaders {
    let reason = d.rejection.error.to_string();
    let reason = match excerpt {
        Some(_) => clip(&reason, SMALL_FIELD_BYTES),
        None => reason.as_str(),
    };
    let partition = d.origin.kafka_partition.unwrap_or_default().to_string();
    let offset = d.origin.offset.unwrap_or_default().to_string();
    let rejected_at = now.to_rfc3339();
    let original = excerpt.flatten();
    let size = original.map(|e| e.size.to_string());
    let mut h = OwnedHeaders::new();
    for (key, value) in [
        ("dlq.reason", Some(reason)),
        ("dlq.code", Some(d.rejection.error.code())),
        ("dlq.source.topic", d.origin.topic.as_deref()),
        ("dlq.source.partition", Some(partition.as_str())),
        ("dlq.source.offset", Some(offset.as_str())),
        ("dlq.rejected_at", Some(rejected_at.as_str())),
        ("dlq.path", d.rejection.path.as_deref()),
        ("dlq.truncated", excerpt.map(|_| "true")),
        ("dlq.original.size", size.as_deref()),
        ("dlq.original.sha256", original.map(|e| e.sha256.as_str())),
    ] {
        if let Some(value) = value {
            h = h.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transaction_refused_over_a_dead_letter_starts_the_next_a_size_smaller() {
        assert_eq!(Cut::after(0), Cut::Whole);
        assert_eq!(Cut::after(1), Cut::Head(EXCERPT_BYTES));
        assert_eq!(Cut::after(2), Cut::Head(0));
        assert_eq!(Cut::after(7), Cut::Head(0));
    }

    #[test]
    fn a_refused_copy_shrinks_to_an_excerpt_then_to_headers_alone() {
        assert_eq!(Cut::Whole.smaller(), Some(Cut::Head(EXCERPT_BYTES)));
        assert_eq!(Cut::Head(EXCERPT_BYTES).smaller(), Some(Cut::Head(0)));
        assert_eq!(Cut::Head(0).smaller(), None);
    }

    #[test]
    fn size_refusals_from_the_client_or_the_broker_cut_the_copy() {
        let local = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(matches!(refused(local), Refused::TooLarge));
        let broker = KafkaError::MessageProduction(RDKafkaErrorCode::MessageBatchTooLarge);
        assert!(matches!(refused(broker), Refused::TooLarge));
        let down = KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(matches!(refused(down), Refused::Other(_)));
    }
}

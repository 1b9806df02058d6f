//! Normalization remembered. A phone number's rules (libphonenumber's metadata, a few
//! regular expressions per country) cost microseconds, and the same senders write again and
//! again: on a business's inbound stream most messages come from a number seen minutes
//! before. Normalization is a pure function of the input and the region, so remembering its
//! answers changes no answer, only the time.
//!
//! Two generations bound the memory: answers go into the current one; when it is full it
//! becomes the previous one and the one before is dropped, and an answer found in the
//! previous generation moves back into the current one. What was used lately stays, at a
//! cost of at most twice [`GENERATION`] entries (about 100 bytes each).
//!
//! The memo is split in [`SHARDS`] by the input's hash, each with its own lock and its own
//! generations: a batch is prepared on two threads, which would otherwise take turns on one
//! lock for every message.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use phonenumber::country;

use super::{Contact, ContactError};

/// Answers per generation, all shards together.
const GENERATION: usize = 1 << 17;

const SHARDS: usize = 16;

/// Answers per generation of one shard.
const SHARD_GENERATION: usize = GENERATION / SHARDS;

/// Longer inputs are normalized every time: they are rare, and they would make entries big.
const MAX_INPUT_BYTES: usize = 32;

type Answer = Result<Contact, ContactError>;

type Key = (country::Id, Box<str>);

#[derive(Default)]
struct Memo {
    current: HashMap<Key, Answer, foldhash::fast::FixedState>,
    previous: HashMap<Key, Answer, foldhash::fast::FixedState>,
}

static MEMO: [Mutex<Option<Memo>>; SHARDS] = [const { Mutex::new(None) }; SHARDS];

fn memo(key: &Key) -> MutexGuard<'static, Option<Memo>> {
    let hash = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(&key.1);
    let shard = &MEMO[(hash >> 60) as usize % SHARDS];
    // The memo holds only answers a pure function gave; one left behind by a panicking
    // thread is as good as any.
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

/// `normalize(input, region)`, or the answer it gave before.
pub(super) fn normalized(
    input: &str,
    region: country::Id,
    normalize: impl Fn(&str, country::Id) -> Answer,
) -> Answer {
    if input.len() > MAX_INPUT_BYTES {
        return normalize(input, region);
    }
    let key = (region, Box::<str>::from(input));
    if let Some(answer) = lookup(&key) {
        return answer;
    }
    let answer = normalize(input, region);
    remember(key, answer.clone());
    answer
}

fn lookup(key: &Key) -> Option<Answer> {
    let mut guard = memo(key);
    let memo = guard.get_or_insert_with(Memo::default);
    if let Some(answer) = memo.current.get(key) {
        return Some(answer.clone());
    }
    let answer = memo.previous.remove(key)?;
    insert(memo, key.clone(), answer.clone());
    Some(answer)
}

fn remember(key: Key, answer: Answer) {
    let mut guard = memo(&key);
    insert(guard.get_or_insert_with(Memo::default), key, answer);
}

fn insert(memo: &mut Memo, key: Key, answer: Answer) {
    if memo.current.len() >= SHARD_GENERATION {
        memo.previous = std::mem::take(&mut memo.current);
    }
    memo.current.insert(key, answer);
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn an_answer_is_computed_once_and_given_again() {
        let calls = Cell::new(0);
        let normalize = |input: &str, _: country::Id| {
            calls.set(calls.get() + 1);
            Ok(Contact(format!("+{input}")))
        };
        // An input no other test normalizes: the memo is shared by the whole process.
        let first = normalized("9990001112223", country::Id::FR, normalize);
        let again = normalized("9990001112223", country::Id::FR, normalize);
        assert_eq!(first, again);
        assert_eq!(calls.get(), 1);
        // The region is part of the question.
        normalized("9990001112223", country::Id::DE, normalize).unwrap();
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn errors_are_remembered_as_errors_and_long_inputs_are_not_remembered() {
        let calls = Cell::new(0);
        let normalize = |_: &str, _: country::Id| {
            calls.set(calls.get() + 1);
            Err(ContactError::NotANumber)
        };
        let long = "1".repeat(MAX_INPUT_BYTES + 1);
        for _ in 0..2 {
            assert_eq!(
                normalized("memo-test-not-a-number", country::Id::FR, normalize),
                Err(ContactError::NotANumber)
            );
            normalized(&long, country::Id::FR, normalize).unwrap_err();
        }
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn a_full_generation_keeps_what_was_used_since() {
        let mut memo = Memo::default();
        let answer = |n: usize| Ok(Contact(format!("+{n}")));
        let key = |n: usize| (country::Id::FR, Box::<str>::from(n.to_string()));
        for n in 0..SHARD_GENERATION {
            insert(&mut memo, key(n), answer(n));
        }
        insert(&mut memo, key(SHARD_GENERATION), answer(SHARD_GENERATION));
        assert_eq!(memo.current.len(), 1);
        assert_eq!(memo.previous.len(), SHARD_GENERATION);
        for n in 0..=SHARD_GENERATION {
            insert(&mut memo, key(SHARD_GENERATION + 1 + n), answer(n));
        }
        // Two generations on, the first answers are gone; the memo never held more than two.
        assert!(!memo.current.contains_key(&key(0)) && !memo.previous.contains_key(&key(0)));
        assert!(memo.current.len() + memo.previous.len() <= 2 * SHARD_GENERATION);
    }
}

//! A derived tree set beside what the log implies for it, in one ordered pass: a tree
//! iterates in key order and the fold's rows are sorted into the same order, so comparing the
//! two is a merge of sorted sequences. A hash map of every implied row, probed once per stored
//! row, missed the cache on nearly every probe at a million events and was most of verify's
//! time after the reading itself (BENCHMARKS.md, "`verify` of 1,000,000 events").

use std::cmp::Ordering;

use super::super::{kv, LedgerError, Result};

/// A key of the tree, of the fold, or of both.
pub(super) enum Side<'a, T> {
    /// Stored, and not implied by the log: the stored value.
    Stored(&'a [u8]),
    /// Implied by the log, and not stored.
    Implied(T),
    /// Both: the stored value and what the log implies.
    Both(&'a [u8], T),
}

/// Calls `visit` for every key of `tree` and of `implied`, in key order. `implied` must come
/// sorted by key; a key repeated in it counts once (an event that links an identifier to
/// itself names it twice). A key out of order is a bug of the fold, not of the ledger, and
/// stops the pass with an error rather than report rows that are not missing.
pub(super) fn merge<T>(
    tree: &kv::Tree,
    implied: impl IntoIterator<Item = (Vec<u8>, T)>,
    mut visit: impl FnMut(&[u8], Side<'_, T>) -> Result<()>,
) -> Result<()> {
    let mut stored = tree.iter();
    let mut implied = Sorted {
        rows: implied.into_iter(),
        last: None,
    };
    let mut s = stored.next().transpose()?;
    let mut i = implied.next()?;
    loop {
        match (s.take(), i.take()) {
            (None, None) => return Ok(()),
            (Some((key, value)), None) => {
                visit(&key, Side::Stored(&value))?;
                s = stored.next().transpose()?;
            }
            (None, Some((key, row))) => {
                visit(&key, Side::Implied(row))?;
                i = implied.next()?;
            }
            (Some((skey, value)), Some((ikey, row))) => match skey.as_ref().cmp(&ikey) {
                Ordering::Less => {
                    visit(&skey, Side::Stored(&value))?;
                    s = stored.next().transpose()?;
                    i = Some((ikey, row));
                }
                Ordering::Greater => {
                    visit(&ikey, Side::Implied(row))?;
                    s = Some((skey, value));
                    i = implied.next()?;
                }
                Ordering::Equal => {
                    visit(&skey, Side::Both(&value, row))?;
                    s = stored.next().transpose()?;
                    i = implied.next()?;
                }
            },
        }
    }
}

/// The implied rows, checked to be in order and with repeats skipped.
struct Sorted<I> {
    rows: I,
    last: Option<Vec<u8>>,
}

impl<T, I: Iterator<Item = (Vec<u8>, T)>> Sorted<I> {
    fn next(&mut self) -> Result<Option<(Vec<u8>, T)>> {
        for (key, row) in self.rows.by_ref() {
            match self.last.as_deref().map(|last| key.as_slice().cmp(last)) {
                Some(Ordering::Equal) => continue,
                Some(Ordering::Less) => {
                    return Err(LedgerError::Corrupt {
                        tree: "verify",
                        detail: "the rows the log implies came out of order (a bug of verify; the ledger was not judged)".into(),
                    })
                }
                _ => {}
            }
            match &mut self.last {
                Some(last) => last.clone_from(&key),
                None => self.last = Some(key.clone()),
            }
            return Ok(Some((key, row)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(rows: &[(&str, &str)]) -> (tempfile::TempDir, kv::Db, kv::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = kv::Db::open(dir.path(), 1 << 20).unwrap();
        let tree = db.open_tree("t").unwrap();
        for (k, v) in rows {
            tree.insert(k, v).unwrap();
        }
        (dir, db, tree)
    }

    fn seen(tree: &kv::Tree, implied: &[(&str, u8)]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        merge(
            tree,
            implied.iter().map(|(k, v)| (k.as_bytes().to_vec(), *v)),
            |key, side| {
                let key = String::from_utf8_lossy(key);
                out.push(match side {
                    Side::Stored(v) => format!("{key}: stored {}", String::from_utf8_lossy(v)),
                    Side::Implied(r) => format!("{key}: implied {r}"),
                    Side::Both(v, r) => {
                        format!("{key}: both {} {r}", String::from_utf8_lossy(v))
                    }
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    #[test]
    fn every_key_of_either_side_is_visited_once_in_order() {
        let (_dir, _db, t) = tree(&[("a", "1"), ("c", "3"), ("d", "4")]);
        let out = seen(&t, &[("b", 2), ("c", 3), ("c", 3), ("e", 5)]).unwrap();
        assert_eq!(
            out,
            [
                "a: stored 1",
                "b: implied 2",
                "c: both 3 3",
                "d: stored 4",
                "e: implied 5"
            ]
        );
    }

    #[test]
    fn implied_rows_out_of_order_are_an_error_not_a_report() {
        let (_dir, _db, t) = tree(&[("a", "1")]);
        let err = seen(&t, &[("b", 2), ("a", 1)]).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn an_empty_side_leaves_the_other_whole() {
        let (_dir, _db, t) = tree(&[]);
        assert_eq!(seen(&t, &[("x", 1)]).unwrap(), ["x: implied 1"]);
        let (_dir, _db, t) = tree(&[("x", "1")]);
        assert_eq!(seen(&t, &[]).unwrap(), ["x: stored 1"]);
    }
}

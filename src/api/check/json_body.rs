//! A JSON check request (`{"purpose": ..., "contacts": [...]}`), read twice without building
//! the list: a validation pass ([`Counted`]) before the 200 goes out, so a typo still gets a
//! proper 400, then a pass that answers each contact as it is reached ([`walk`]). Items are
//! borrowed from the body when they need no unescaping.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::super::stream::StreamError;
use super::answer::{Answer, Position};
use super::Checker;

/// One item of `contacts`.
enum Item<'de> {
    Text(Cow<'de, str>),
    /// Not a string or a number: reported as invalid with this description.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a phone number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.to_string().into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.to_string().into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.to_string().into()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item<'de>, E> {
                Ok(Item::Other("a fractional number"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item<'de>, E> {
                Ok(Item::Other("a boolean"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item<'de>, E> {
                Ok(Item::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `contacts` in the validation pass: checks every item's shape, keeps only the count.
#[derive(Debug, Default)]
pub struct Counted(pub u64);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Counted;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of phone numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Counted, A::Error> {
                let mut n = 0;
                while seq.next_element::<Item<'de>>()?.is_some() {
                    n += 1;
                }
                Ok(Counted(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The second pass over a body the first pass validated: answers each contact as it is
/// reached.
pub fn walk(
    body: &[u8],
    checker: &mut Checker<'_>,
    out: &mut Answer<'_>,
) -> Result<(), StreamError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = de.deserialize_map(EnvelopeWalk {
        checker: &mut *checker,
        out,
    });
    match (walked, checker.failure.take()) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(std::io::Error::other(e).into()),
        (Ok(()), None) => Ok(()),
    }
}

struct EnvelopeWalk<'a, 'c, 'w> {
    checker: &'a mut Checker<'c>,
    out: &'a mut Answer<'w>,
}

impl<'de> Visitor<'de> for EnvelopeWalk<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a check request")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "contacts" {
                map.next_value_seed(ContactsWalk {
                    checker: &mut *self.checker,
                    out: &mut *self.out,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ContactsWalk<'a, 'c, 'w> {
    checker: &'a mut Checker<'c>,
    out: &'a mut Answer<'w>,
}

impl<'de> DeserializeSeed<'de> for ContactsWalk<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ContactsWalk<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of phone numbers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        while let Some(item) = seq.next_element::<Item<'de>>()? {
            let at = Position::Index(index);
            let done = match item {
                Item::Text(text) => self.checker.one(&text, at, self.out),
                Item::Other(what) => {
                    let reason = format!("expected a phone number as a string, got {what}");
                    self.checker.not_a_contact(what, &reason, at, self.out)
                }
            };
            if let Err(e) = done {
                // serde errors carry only a message: the real one waits in the checker.
                self.checker.failure = Some(e);
                return Err(de::Error::custom("stopped"));
            }
            index += 1;
        }
        Ok(())
    }
}

//! The canonical bytes of any `Serialize` value, written straight from it: the same bytes as
//! [`super::to_vec`] of its `serde_json::Value`, without building that tree first. An event is
//! hashed when it is appended and again by every `verify`; building the tree (a string and a
//! map node for each of some thirty fields) was most of the hashing (BENCHMARKS.md, "verify").
//!
//! Each object's members are serialized one by one into their own bytes, then sorted by
//! name as RFC 8785 says and written; everything else is written as it comes.

use std::borrow::Cow;
use std::fmt::Display;
use std::ops::Range;

use serde::ser::{self, Serialize};

/// Why a value has no canonical form: a map key that is not a string, a number or a bool
/// (`serde_json` refuses those too). Our records never hold one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// The canonical bytes of `value`, leaving out the top-level members named in `skip`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T, skip: &[&str]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(1024);
    value.serialize(Canonical {
        out: &mut out,
        skip,
    })?;
    Ok(out)
}

struct Canonical<'a, 's> {
    out: &'a mut Vec<u8>,
    /// Members of the top-level object to leave out; empty below it.
    skip: &'s [&'s str],
}

impl Canonical<'_, '_> {
    fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        serde_json::to_writer(self.out, value).map_err(|e| Error(e.to_string()))
    }

    fn nested<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
        value.serialize(Canonical { out, skip: &[] })
    }
}

/// Members of an object, in the order they came; sorted when the object ends.
struct Members<'a, 's> {
    out: &'a mut Vec<u8>,
    skip: &'s [&'s str],
    /// Each member's name and where its value's bytes are in `values`.
    members: Vec<(Cow<'static, str>, Range<usize>)>,
    values: Vec<u8>,
    /// The key of a map entry whose value has not come yet.
    key: Option<Cow<'static, str>>,
    /// `{"variant":` was written before the object: close it too.
    variant: bool,
}

impl Members<'_, '_> {
    fn member<T: Serialize + ?Sized>(
        &mut self,
        name: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Error> {
        if self.skip.contains(&name.as_ref()) {
            return Ok(());
        }
        let start = self.values.len();
        Canonical::nested(&mut self.values, value)?;
        self.members.push((name, start..self.values.len()));
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        // Stable, so that of two members of one name the last stays last: it is the one a
        // `serde_json::Map` keeps. ASCII names (every name our records have) sort the same
        // by bytes as by UTF-16 code units, without re-encoding them at every comparison.
        if self.members.iter().all(|m| m.0.is_ascii()) {
            self.members
                .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        } else {
            self.members
                .sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        }
        self.out.push(b'{');
        let mut first = true;
        for (i, (name, range)) in self.members.iter().enumerate() {
            if self.members.get(i + 1).is_some_and(|next| next.0 == *name) {
                continue;
            }
            if !std::mem::take(&mut first) {
                self.out.push(b',');
            }
            serde_json::to_writer(&mut *self.out, name).map_err(|e| Error(e.to_string()))?;
            self.out.push(b':');
            self.out.extend_from_slice(&self.values[range.clone()]);
        }
        self.out.push(b'}');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// Items of an array, written as they come.
struct Items<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    /// `{"variant":` was written before the array: close it too.
    variant: bool,
}

impl Items<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        Canonical::nested(self.out, value)
    }

    fn finish(self) -> Result<(), Error> {
        self.out.push(b']');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

fn open_variant(out: &mut Vec<u8>, variant: &str) -> Result<(), Error> {
    out.push(b'{');
    serde_json::to_writer(&mut *out, variant).map_err(|e| Error(e.to_string()))?;
    out.push(b':');
    Ok(())
}

impl<'a, 's> ser::Serializer for Canonical<'a, 's> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Items<'a>;
    type SerializeTuple = Items<'a>;
    type SerializeTupleStruct = Items<'a>;
    type SerializeTupleVariant = Items<'a>;
    type SerializeMap = Members<'a, 's>;
    type SerializeStruct = Members<'a, 's>;
    type SerializeStructVariant = Members<'a, 's>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // As `serde_json::Value` holds it: widened to f64 (a non-finite one is null).
        self.json(&serde_json::Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.json(&serde_json::Value::from(v))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.json(&v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.json(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.json(v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.json(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        open_variant(self.out, variant)?;
        Canonical::nested(self.out, value)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Items<'a>, Error> {
        self.out.push(b'[');
        Ok(Items {
            out: self.out,
            first: true,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Items<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Items<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Items<'a>, Error> {
        open_variant(self.out, variant)?;
        self.out.push(b'[');
        Ok(Items {
            out: self.out,
            first: true,
            variant: true,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Members<'a, 's>, Error> {
        Ok(Members {
            out: self.out,
            skip: self.skip,
            members: Vec::with_capacity(len.unwrap_or(0)),
            values: Vec::with_capacity(256),
            key: None,
            variant: false,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Members<'a, 's>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Members<'a, 's>, Error> {
        open_variant(self.out, variant)?;
        Ok(Members {
            out: self.out,
            skip: &[],
            members: Vec::with_capacity(len),
            values: Vec::with_capacity(256),
            key: None,
            variant: true,
        })
    }
}

impl ser::SerializeSeq for Items<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Items<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Items<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Items<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        // A key as `serde_json::Value` makes it: a string as it is, a number or a bool
        // written out.
        self.key = Some(Cow::Owned(
            match serde_json::to_value(key).map_err(|e| Error(e.to_string()))? {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(Error("a map key must be a string".into())),
            },
        ));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error("a map value without its key".into()))?;
        self.member(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.member(Cow::Borrowed(name), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Members<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.member(Cow::Borrowed(name), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
            "[\\x00-\\x1f\\\\\"\u{7f}\u{2028}]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::vec(("[a-z\\u{e9}\\u{e000}\\u{1f600}\"]{0,3}", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_value_written_straight_has_the_bytes_of_its_tree(value in json()) {
            prop_assert_eq!(to_vec(&value, &[]).unwrap(), super::super::to_vec(&value));
        }

        #[test]
        fn skipped_members_are_left_out_at_the_top_only(value in json()) {
            let skip = ["a", "b"];
            let mut top = serde_json::json!({"a": 1, "b": {"a": 2}, "c": value});
            let written = to_vec(&top, &skip).unwrap();
            top.as_object_mut().unwrap().retain(|name, _| !skip.contains(&name.as_str()));
            prop_assert_eq!(written, super::super::to_vec(&top));
        }
    }
}

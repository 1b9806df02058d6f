//! The JSON Canonicalization Scheme (RFC 8785) for the values the ledger hashes and signs:
//! object members sorted by their names' UTF-16 code units, no whitespace, strings escaped as
//! ECMAScript's `JSON.stringify` escapes them, integers written plainly. Any language can
//! reproduce these bytes (Python: `json.dumps(v, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` for our values), which is what lets somebody who does not run
//! consent-ledger check a proof.

mod ser;

use serde_json::Value;

pub use ser::{to_vec as serialize, Error as SerializeError};

/// The canonical bytes of `value`. Our records hold no floating-point numbers; one that did
/// would be written as serde_json writes it, which RFC 8785 does not promise for every float.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's map (without `preserve_order`) iterates its names in UTF-8 byte
            // order, which is UTF-16 order unless a name holds a character at or above U+E000:
            // ASCII names, every name our records have, need no sort.
            if map.keys().all(|name| name.is_ascii()) {
                write_members(map.iter(), out);
            } else {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                write_members(members.into_iter(), out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(v, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => serde_json::to_writer(out, other).expect("writing to a Vec cannot fail"),
    }
}

fn write_members<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (name, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(name, out);
        out.push(b':');
        write(v, out);
    }
}

/// serde_json escapes exactly what RFC 8785 requires: `"` and `\`, the short forms `\b \f \n
/// \r \t`, other control characters as lowercase `\u00xx`, and nothing else.
fn write_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_sorted_and_nothing_is_padded() {
        let v = json!({"b": 1, "a": [true, null, {"d": "x", "c": -5}], "é": "\u{1f}\n/ü"});
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#"{"a":[true,null,{"c":-5,"d":"x"}],"b":1,"é":"\u001f\n/ü"}"#
        );
    }

    /// RFC 8785 sorts by UTF-16 code units, which differs from UTF-8 byte order above U+FFFF.
    #[test]
    fn names_sort_by_utf16_code_units() {
        let v = json!({"\u{e000}": 1, "\u{1f600}": 2});
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            "{\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }

    proptest::proptest! {
        /// The unsorted path for ASCII names gives the bytes a sort by UTF-16 code units gives.
        #[test]
        fn names_come_out_in_utf16_order_however_they_are_spelled(
            names in proptest::collection::vec("[a-zA-Z_0-9\u{e9}\u{e000}\u{ffff}\u{1f600}]{0,4}", 0..8)
        ) {
            let map: serde_json::Map<String, Value> =
                names.iter().map(|n| (n.clone(), Value::from(n.len()))).collect();
            let mut sorted: Vec<&String> = map.keys().collect();
            sorted.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            let expected = format!(
                "{{{}}}",
                sorted
                    .iter()
                    .map(|n| format!("{}:{}", serde_json::to_string(n).unwrap(), n.len()))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            proptest::prop_assert_eq!(String::from_utf8(to_vec(&Value::Object(map))).unwrap(), expected);
        }
    }
}

//! The JSON Canonicalization Scheme (RFC 8785) for the values the ledger hashes and signs:
//! object members sorted by their names' UTF-16 code units, no whitespace, strings escaped as
//! ECMAScript's `JSON.stringify` escapes them, integers written plainly. Any language can
//! reproduce these bytes (Python: `json.dumps(v, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` for our values), which is what lets somebody who does not run
//! consent-ledger check a proof.

use serde_json::Value;

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
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (name, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write(v, out);
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
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// serde_json escapes exactly what RFC 8785 requires: `"` and `\`, the short forms `\b \f \n
/// \r \t`, other control characters as lowercase `\u00xx`, and nothing else.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        serde_json::to_string(s)
            .expect("a string always serializes")
            .as_bytes(),
    );
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
}

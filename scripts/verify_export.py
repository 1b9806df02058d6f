#!/usr/bin/env python3
"""Checks a consent-ledger access export (the JSON form) without consent-ledger.

    python3 scripts/verify_export.py FILE [--public-key KEY]

Exit 0 when the file is intact, 1 with the reason when any byte was changed, 2 when FILE is
not a proof file. KEY is what `consent-ledger public-key` prints (base64 of the 32-byte
Ed25519 key); without it the file is checked against the key it names, which proves that it
is intact under that key only.

Needs Python 3.8+ and one package, `cryptography` (pip install cryptography), for Ed25519 and
AES-256-GCM. The checks, the same as `consent-ledger verify-export`:

1. The file is RFC 8785 canonical JSON plus a newline (so no byte can change unnoticed),
   with "proof": "consent-ledger access export" and "version": 1 or 2.
2. Its "signature" is the key's Ed25519 signature over the canonical JSON of the file
   without "signature".
3. Each chain segment's digests lead from its "prev_hash" to its signed head:
   h = SHA-256(h_hex + digest_hex), and the head's signature covers the canonical JSON of
   {"hash", "partition", "seq", "signed_at"}.
4. Each event is of the file's format (version 1: 2, fields in clear; version 2: 3, personal
   fields sealed), of the file's tenant, about the person (version 1: its contact, or a
   link's linked_contact, is one of "identifiers"; version 2: the keyed hash its sealed
   contact or linked_contact carries is one of "refs"); its content digest is SHA-256 of the
   canonical JSON of the event without "hash" and "prev_hash"; SHA-256(prev_hash + digest)
   is its "hash"; the segment that covers it has that digest at its place, and the chain
   reaches the event's hash there.
5. Version 2: "opened" is "events" with every sealed field opened with "keys" (or
   "[erased]" where the file has no key for it). A sealed field is
   "enc1:<kind>:<ref hex>:<base64 of nonce(12) + AES-256-GCM ciphertext>", its key named
   "<kind>:<ref>" ("n:<event id>" for kind n), its associated data
   "consent-ledger field v1\0" + kind + ref bytes + event id bytes + "\0" + field name.
"""

import argparse
import base64
import hashlib
import json
import sys
import uuid

MARKER = "consent-ledger access export"


class Tampered(Exception):
    pass


class NotAProof(Exception):
    pass


def canonical(value):
    """RFC 8785 for the values a proof holds (strings, integers, booleans, null)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def chain_hash(prev_hash, digest):
    return sha256_hex((prev_hash + digest).encode())


def check_signature(public_key, data, signature):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError) as e:
        raise Tampered(f"signature does not match ({type(e).__name__})")


def content_digest(event):
    body = {k: v for k, v in event.items() if k not in ("hash", "prev_hash")}
    return sha256_hex(canonical(body))


FIELD_LABEL = b"consent-ledger field v1\0"
ERASED = "[erased]"


def open_field(value, event_id, name, keys):
    if not isinstance(value, str) or not value.startswith("enc1:"):
        return value
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kind, ref, data = value[len("enc1:"):].split(":", 2)
    key_name = f"n:{event_id}" if kind == "n" else f"{kind}:{ref}"
    # The slot's key, and any other key of the same slot, named "<name>:<key id>" (two
    # instances of a scale-out deployment that made a key for one identifier at once).
    candidates = [v for k, v in keys.items() if k == key_name or k.startswith(key_name + ":")]
    blob = base64.b64decode(data, validate=True)
    context = uuid.UUID(event_id).bytes + b"\0" + name.encode()
    aad = FIELD_LABEL + kind.encode() + bytes.fromhex(ref) + context
    for key in candidates:
        try:
            return AESGCM(base64.b64decode(key, validate=True)).decrypt(blob[:12], blob[12:], aad).decode()
        except (InvalidTag, ValueError):
            continue
    return ERASED


def open_event(e, keys):
    o = json.loads(json.dumps(e))
    eid = e["event_id"]
    o["contact"] = open_field(e["contact"], eid, "contact", keys)
    if e.get("linked_contact") is not None:
        o["linked_contact"] = open_field(e["linked_contact"], eid, "linked_contact", keys)
    if "linked" in e:
        o["linked"] = [open_field(c, eid, f"linked/{i}", keys) for i, c in enumerate(e["linked"])]
    if e["source"].get("text") is not None:
        o["source"]["text"] = open_field(e["source"]["text"], eid, "source.text", keys)
    o["source"]["message_id"] = open_field(e["source"]["message_id"], eid, "source.message_id", keys)
    if e["source"].get("context_message_id") is not None:
        o["source"]["context_message_id"] = open_field(
            e["source"]["context_message_id"], eid, "source.context_message_id", keys
        )
    return o


def sealed_ref(value):
    if isinstance(value, str) and value.startswith("enc1:"):
        return value.split(":")[2]
    return None


def verify(raw, public_key=None):
    # A file that names itself a proof but no longer parses, or lost its marker field, was
    # one before somebody changed it.
    names_itself = MARKER.encode() in raw
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        if names_itself:
            raise Tampered(f"no longer valid JSON ({e})")
        raise NotAProof(f"not JSON ({e})")
    if not isinstance(doc, dict) or doc.get("proof") != MARKER:
        if names_itself:
            raise Tampered('its "proof" field was changed')
        raise NotAProof(f'no "proof": "{MARKER}" field')
    version = doc.get("version")
    if version not in (1, 2):
        raise Tampered(f"unknown version {version!r}")
    if canonical(doc) + b"\n" != raw:
        raise Tampered("the file is not in its canonical form (RFC 8785 JSON and a newline)")
    key = (public_key or doc["public_key"]).strip()
    if public_key is not None and key != doc["public_key"]:
        raise Tampered("the file was signed with another key than the one given")
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    check_signature(key, canonical(unsigned), doc["signature"])

    segments = []
    for s in doc["chains"]:
        head = s["head"]
        if head["partition"] != s["partition"] or s["from_seq"] < 1 or head["seq"] + 1 != s["from_seq"] + len(s["digests"]):
            raise Tampered(f"the segment of partition {s['partition']} from {s['from_seq']} does not end at its head")
        h = s["prev_hash"]
        for d in s["digests"]:
            h = chain_hash(h, d)
        if h != head["hash"]:
            raise Tampered(f"the chain of partition {s['partition']} from {s['from_seq']} does not lead to its signed head")
        statement = {k: head[k] for k in ("partition", "seq", "hash", "signed_at")}
        check_signature(key, canonical(statement), head["signature"])
        segments.append(s)

    if version == 2:
        opened = doc.get("opened", [])
        if len(opened) != len(doc["events"]):
            raise Tampered("the opened events do not match the stored ones")
        keys = doc.get("keys", {})
        for e, shown in zip(doc["events"], opened):
            if open_event(e, keys) != shown:
                raise Tampered(f"event {e.get('event_id')} does not open to what the file shows of it")

    identifiers = set(doc["identifiers"])
    refs = set(doc.get("refs", []))
    fmt = 2 if version == 1 else 3
    for e in doc["events"]:
        eid = e.get("event_id")
        if e.get("format") != fmt:
            raise Tampered(f"event {eid} has format {e.get('format')!r}, expected {fmt}")
        if e["tenant"] != doc["tenant"]:
            raise Tampered(f"event {eid} is of another tenant")
        if version == 1:
            names = lambda c: c in identifiers  # noqa: E731
        else:
            names = lambda c: sealed_ref(c) in refs  # noqa: E731
        about = names(e["contact"]) or (e["type"] == "IdentityLinked" and names(e.get("linked_contact")))
        if not about:
            raise Tampered(f"event {eid} is about none of the file's identifiers")
        digest = content_digest(e)
        if chain_hash(e["prev_hash"], digest) != e["hash"]:
            raise Tampered(f"event {eid} does not hash to its hash: it was edited")
        covering = [s for s in segments if s["partition"] == e["partition"] and s["from_seq"] <= e["seq"] <= s["head"]["seq"]]
        if not covering:
            raise Tampered(f"event {eid} is not tied to a signed head")
        s = max(covering, key=lambda s: s["from_seq"])
        at = e["seq"] - s["from_seq"]
        if s["digests"][at] != digest:
            raise Tampered(f"event {eid} differs from the chain's record of it")
        h = s["prev_hash"]
        for d in s["digests"][: at + 1]:
            h = chain_hash(h, d)
        if h != e["hash"]:
            raise Tampered(f"event {eid} is not where the chain puts it")
    return doc, key


def fingerprint(public_key):
    d = sha256_hex(public_key.strip().encode())[:16]
    return ":".join(d[i : i + 4] for i in range(0, 16, 4))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file")
    p.add_argument("--public-key")
    a = p.parse_args()
    try:
        with open(a.file, "rb") as f:
            raw = f.read()
    except OSError as e:
        print(f"cannot read {a.file}: {e}", file=sys.stderr)
        return 2
    try:
        doc, key = verify(raw, a.public_key)
    except NotAProof as e:
        print(f"not a consent-ledger proof file: {e}", file=sys.stderr)
        return 2
    except Tampered as e:
        print(f"the proof does not verify: {e}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        print(f"the proof does not verify: a field is missing or malformed ({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    print(f"ok: {len(doc['events'])} events about {len(doc['identifiers'])} identifiers, every one tied to a head signed by key {fingerprint(key)}")
    if a.public_key is None:
        print("note: checked against the key inside the file; this proves the file is intact under that key only.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

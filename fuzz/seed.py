#!/usr/bin/env python3
"""Writes each fuzz target's seed corpus into fuzz/corpus/<target>/ from the project's own
fixtures and tests, so that libFuzzer starts from real inputs rather than from nothing:

- decode: every webhook of tests/fixtures/webhooks/ (one file per named example), the lines
  of examples/whatsapp-webhooks.jsonl and of the normalized records in tests/fixtures/;
- classify: every text of the keyword corpus (tests/fixtures/keywords/corpus.jsonl) and every
  word, phrase and template text of the language files (src/domain/language/*.toml);
- import_rows, check_ndjson: the CSV and NDJSON bodies the HTTP tests send (string literals of
  tests/http/*.rs), examples/audience.txt;
- lint_template: examples/templates/*.json and, per language, the template the language
  file's [template] texts make.

Seeds are named after their content, so running this again adds nothing twice. The corpus
folders are not checked in (fuzz/.gitignore): they grow with every run.
"""

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("seed-" + hashlib.sha1(data).hexdigest())).write_bytes(data)


def languages():
    """The language files in the classifier's order (their `position`)."""
    files = [(tomllib.loads(p.read_text()), p.stem) for p in (ROOT / "src/domain/language").glob("*.toml")]
    return [(code, data) for data, code in sorted(files, key=lambda f: f[0].get("position", 99))]


def words(value):
    """Every `word` (and plain string) anywhere under a TOML value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from words(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in ("word", "words", "text") or isinstance(v, (list, dict)):
                yield from words(v)


def rust_strings(path):
    """The string literals of a Rust source file, unescaped."""
    source = path.read_text()
    for m in re.finditer(r'(?<![A-Za-z0-9_#])"((?:[^"\\]|\\.)*)"', source, re.S):
        raw = m.group(1)
        raw = re.sub(r"\\\n\s*", "", raw)
        raw = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda u: chr(int(u.group(1), 16)), raw)
        raw = raw.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t")
        raw = raw.replace('\\"', '"').replace("\\'", "'").replace("\\\\", "\\")
        yield raw


def decode_seeds():
    for path in sorted((ROOT / "tests/fixtures/webhooks").glob("*/*.json")):
        for webhook in json.loads(path.read_text()).values():
            write("decode", json.dumps(webhook))
    for path in [ROOT / "examples/whatsapp-webhooks.jsonl", *sorted((ROOT / "tests/fixtures").glob("*.jsonl"))]:
        for line in path.read_text().splitlines():
            if line.strip():
                write("decode", line)


def classify_seeds(langs):
    every = bytes([len(langs)])
    for line in (ROOT / "tests/fixtures/keywords/corpus.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        own = [i for i, (code, _) in enumerate(langs) if code == case.get("language")]
        for choice in [every, *(bytes([i]) for i in own)]:
            write("classify", choice + case["text"].encode())
    for i, (_, data) in enumerate(langs):
        for section in ("keywords", "phrases", "grammar"):
            for word in words(data.get(section, {})):
                write("classify", bytes([i]) + word.encode())
        template = data.get("template", {})
        if template:
            write("classify", bytes([i]) + f"{template['button']}\n{template['footer']}".encode())


def body_seeds():
    for path in sorted((ROOT / "tests/http").glob("*.rs")):
        for s in rust_strings(path):
            if "contact" in s.lower() and "status" in s.lower() and ("\n" in s or s.startswith("{")):
                write("import_rows", (b"\x01" if s.lstrip("\ufeff").startswith("{") else b"\x00") + s.encode())
            elif "\n" in s and re.search(r"\+?\d[\d ]{7,}", s):
                write("check_ndjson", b"\xfe\x00\x00" + s.encode())
    audience = (ROOT / "examples/audience.txt").read_bytes()
    write("check_ndjson", b"\xfe\x00\x00" + audience)
    write("check_ndjson", b"\x0f\x40\x00" + audience)


def template_seeds(langs):
    for path in sorted((ROOT / "examples/templates").glob("*.json")):
        write("lint_template", path.read_text())
    for code, data in langs:
        template = data.get("template", {})
        if not template:
            continue
        write("lint_template", json.dumps({
            "name": "promo", "language": code, "category": "MARKETING",
            "components": [
                {"type": "BODY", "text": "-20%"},
                {"type": "FOOTER", "text": template["footer"]},
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": template["button"]}]},
            ],
        }, ensure_ascii=False))


def main():
    langs = languages()
    decode_seeds()
    classify_seeds(langs)
    body_seeds()
    template_seeds(langs)
    for target in sorted(p.name for p in CORPUS.iterdir()):
        print(f"{target}: {len(list((CORPUS / target).iterdir()))} inputs", file=sys.stderr)


if __name__ == "__main__":
    main()

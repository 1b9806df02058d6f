#!/usr/bin/env python3
"""Lists the real words one keyboard typo away from a built-in opt-out keyword, per language.

The typo rule (src/domain/keywords/typo.rs) reads "stpo" as STOP, but must never read a real
word ("top", "stoop") as a keyword. Each language file keeps those words in `[typo] words`;
this script finds them in the Debian word lists (apt-get install wamerican wfrench witalian
wspanish wngerman wportuguese) with the same four edits the rule makes: a letter run
collapsed, two letters swapped, a neighbouring key, one letter dropped. Tenants usually enable
English beside their language, so English keywords are targets in every language.

Usage: scripts/typo_words.py [--write]   (prints the words to add; --write merges them in)
"""
import re
import sys
import tomllib
import unicodedata
from pathlib import Path

LANG_DIR = Path(__file__).resolve().parent.parent / "src/domain/language"
DICTS = {"en": "american-english", "fr": "french", "it": "italian", "es": "spanish",
         "de": "ngerman", "pt": "portuguese"}
MIN_TARGET = 4


def norm(word):
    word = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in word if not unicodedata.combining(c))


def collapse(word):
    return re.sub(r"(.)\1+", r"\1", word)


def neighbours(rows):
    near = {}
    for r, row in enumerate(rows):
        for i, c in enumerate(row):
            n = near.setdefault(c, set())
            n.update(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
            if r > 0:
                n.update(rows[r - 1][j] for j in (i, i + 1) if j < len(rows[r - 1]))
            if r + 1 < len(rows):
                n.update(rows[r + 1][j] for j in (i - 1, i) if 0 <= j < len(rows[r + 1]))
    return near


def is_typo(word, targets, collapsed, near, alphabet):
    if len(word) < MIN_TARGET - 1 or word in targets or not word.isalpha():
        return False
    if collapse(word) in collapsed:
        return True
    letters = list(word)
    for i in range(len(letters) - 1):
        s = letters[:]
        s[i], s[i + 1] = s[i + 1], s[i]
        if "".join(s) in targets:
            return True
    for i, c in enumerate(letters):
        for n in near.get(c, ()):
            if "".join(letters[:i] + [n] + letters[i + 1:]) in targets:
                return True
    return any(word[:i] + c + word[i:] in targets
               for i in range(len(word) + 1) for c in alphabet)


def main():
    files = {p.stem: tomllib.loads(p.read_text()) for p in LANG_DIR.glob("*.toml")}

    def keywords(code):
        kw = files[code]["keywords"]
        return {t["word"] for t in kw.get("opt_out", []) + kw.get("opt_out_all", [])
                if " " not in t["word"] and len(t["word"]) >= MIN_TARGET}

    for code, data in sorted(files.items()):
        targets = keywords(code) | keywords("en")
        collapsed = {collapse(t) for t in targets}
        near = neighbours(data["typo"]["keyboard"])
        for c, n in neighbours(files["en"]["typo"]["keyboard"]).items():
            near.setdefault(c, set()).update(n)
        alphabet = {c for t in targets for c in t}
        dict_path = Path("/usr/share/dict") / DICTS[code]
        words = {norm(w) for w in dict_path.read_text(errors="ignore").split()}
        found = {w for w in words if is_typo(w, targets, collapsed, near, alphabet)}
        new = sorted(found - set(data["typo"]["words"]))
        print(f"{code}: {len(new)} to add: {' '.join(new)}")
        if "--write" in sys.argv and new:
            path = LANG_DIR / f"{code}.toml"
            text = path.read_text()
            merged = sorted(set(data["typo"]["words"]) | found)
            line = "words = [" + ", ".join(f'"{w}"' for w in merged) + "]"
            text = re.sub(r'(?m)^words = \[.*\]$', lambda _: line, text, count=1)
            path.write_text(text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reads `cargo --message-format=json` on stdin, as scripts/test.sh builds the tests with
clippy-driver linting this crate as it compiles.

- Prints every error, and every warning (rustc's or clippy's) in this crate, as cargo would.
- Writes the test executables (unit tests of the library and binary, and the tests/ binaries:
  not the benchmark harnesses) to the file named by the first argument, one
  "name path" per line.
- Exits 1 when this crate has any warning: the `-D warnings` of `cargo clippy`.
"""

import json
import sys


def main() -> int:
    bins_file = sys.argv[1]
    warnings = 0
    bins = []
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        reason = msg.get("reason")
        if reason == "compiler-message":
            diag = msg["message"]
            # Only path dependencies are ours; registry crates' warnings are capped anyway.
            ours = msg["package_id"].startswith("path+file://")
            if diag["level"] == "error" or (ours and diag["level"] == "warning"):
                sys.stderr.write(diag.get("rendered") or diag["message"] + "\n")
            if ours and diag["level"] == "warning":
                warnings += 1
        elif reason == "compiler-artifact":
            kind = msg["target"]["kind"]
            if msg.get("executable") and msg["profile"]["test"] and "bench" not in kind:
                bins.append(f'{msg["target"]["name"]} {msg["executable"]}')
    with open(bins_file, "w", encoding="utf-8") as out:
        out.write("".join(b + "\n" for b in sorted(set(bins))))
    if warnings:
        sys.stderr.write(f"{warnings} warning(s) in this crate (rustc or clippy); see above\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Soak test of `consent-ledger serve` (not part of CI): a steady mix of audience checks,
consent writes and imports for a configurable time, against one real server process.

It reports the error rate, the p99 latency of each kind of request, and the trend of the
server's resident memory (RSS) after warm-up, in MB per 10 minutes (target: under 1).

    scripts/soak.sh [MINUTES]          # builds the release binary, starts serve, runs this

Only the Python standard library is used, so it runs on any machine with Python 3.
"""

import argparse
import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.request


def status(pid):
    """The server's resident memory in MB, split as the kernel counts it (heap and other
    anonymous memory, mapped files), and its thread count: a growing RSS is told apart from
    a growing heap, mapped files or threads that come and go."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    mb = lambda name: int(fields[name][0]) / 1024
    return {"rss": mb("VmRSS"), "anon": mb("RssAnon"), "file": mb("RssFile"), "threads": int(fields["Threads"][0])}


def rss_mb(pid):
    return status(pid)["rss"]


def slope_per_10min(samples):
    """Least-squares slope of (seconds, MB), in MB per 600 s."""
    n = len(samples)
    if n < 3:
        return float("nan")
    mx = sum(t for t, _ in samples) / n
    my = sum(m for _, m in samples) / n
    num = sum((t - mx) * (m - my) for t, m in samples)
    den = sum((t - mx) ** 2 for t, _ in samples)
    return num / den * 600 if den else float("nan")


class Load:
    def __init__(self, base, token, seed, mix):
        self.base = base.rstrip("/")
        total = sum(mix.values())
        self.check_share = mix.get("check", 0) / total
        self.write_share = mix.get("write", 0) / total
        self.token = token
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.latency = {"check": [], "write": [], "import": []}
        self.errors = {"check": 0, "write": 0, "import": 0}
        self.statuses = {}
        self.counter = 0

    def request(self, kind, path, body, content_type, key=None):
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        if key:
            headers["Idempotency-Key"] = key
        req = urllib.request.Request(self.base + path, data=body, method="POST", headers=headers)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                res.read()
                status = res.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError) as e:
            status = type(e).__name__
        ok = isinstance(status, int) and 200 <= status < 300
        elapsed = time.perf_counter() - start
        with self.lock:
            self.latency[kind].append(elapsed)
            if not ok:
                self.errors[kind] += 1
                key = f"{kind} {status}"
                self.statuses[key] = self.statuses.get(key, 0) + 1

    def contact(self):
        return "+336%08d" % self.rng.randrange(200_000)

    def one(self):
        with self.lock:
            self.counter += 1
            n = self.counter
        roll = self.rng.random()
        if roll < self.check_share:
            contacts = [self.contact() for _ in range(500)]
            body = json.dumps({"purpose": "marketing", "contacts": contacts}).encode()
            self.request("check", "/consent/check", body, "application/json")
        elif roll < self.check_share + self.write_share:
            kind = "OptedOut" if self.rng.random() < 0.7 else "OptedIn"
            body = json.dumps({"contact": self.contact(), "type": kind, "source": "soak"}).encode()
            self.request("write", "/consent-events", body, "application/json", key=f"soak-{n}")
        else:
            rows = ["contact,status,occurred_at"]
            for i in range(200):
                status = "opted_out" if self.rng.random() < 0.8 else "opted_in"
                rows.append(f"{self.contact()},{status},2026-01-{1 + (n + i) % 28:02d}")
            self.request("import", "/imports", ("\n".join(rows) + "\n").encode(), "text/csv")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="tenant API base, e.g. http://127.0.0.1:8080/v1/tenants/acme")
    p.add_argument("--token", required=True)
    p.add_argument("--pid", type=int, required=True, help="the server's process id, for its RSS")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=float, default=50, help="requests per second, steady")
    p.add_argument("--warmup", type=float, default=5, help="minutes left out of the RSS trend")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--mix",
        default="check=70,write=27,import=3",
        help="shares of checks, writes and imports; one kind alone tells which one memory grows with",
    )
    a = p.parse_args()
    mix = {}
    for part in a.mix.split(","):
        kind, _, share = part.partition("=")
        if kind not in ("check", "write", "import") or not share.strip().isdigit():
            p.error(f"--mix: {part!r} is not check=N, write=N or import=N")
        mix[kind] = int(share)
    if sum(mix.values()) == 0:
        p.error("--mix: every share is 0")

    load = Load(a.base, a.token, a.seed, mix)
    stop = time.monotonic() + a.minutes * 60
    started = time.monotonic()
    samples = []
    workers = []
    interval = 1.0 / a.rate
    next_at = time.monotonic()
    last_sample = 0.0
    while time.monotonic() < stop:
        now = time.monotonic()
        if now - last_sample >= 10:
            st = status(a.pid)
            samples.append((now - started, st["rss"]))
            last_sample = now
            print(
                f"{(now - started) / 60:6.1f} min  rss {st['rss']:7.1f} MB  anon {st['anon']:7.1f}"
                f"  file {st['file']:6.1f}  threads {st['threads']:3d}  requests {load.counter}",
                flush=True,
            )
        workers = [w for w in workers if w.is_alive()]
        if len(workers) < 16:
            w = threading.Thread(target=load.one, daemon=True)
            w.start()
            workers.append(w)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    for w in workers:
        w.join(timeout=60)
    samples.append((time.monotonic() - started, rss_mb(a.pid)))

    after = [(t, m) for t, m in samples if t >= a.warmup * 60]
    total = sum(len(v) for v in load.latency.values())
    errors = sum(load.errors.values())
    report = {
        "minutes": a.minutes,
        "mix": a.mix,
        "requests": total,
        "error_rate": errors / total if total else None,
        "p99_seconds": {
            k: round(statistics.quantiles(v, n=100)[98], 4) if len(v) >= 100 else None
            for k, v in load.latency.items()
        },
        "requests_by_kind": {k: len(v) for k, v in load.latency.items()},
        "errors_by_kind_and_status": load.statuses,
        "rss_mb_start_after_warmup": round(after[0][1], 1) if after else None,
        "rss_mb_end": round(samples[-1][1], 1),
        "rss_mb_per_10min_after_warmup": round(slope_per_10min(after), 3),
        # The shape of the trend: a cache that fills shows as a slope that falls to zero, a
        # leak as one that does not.
        "rss_mb_per_10min_second_half": round(
            slope_per_10min([(t, m) for t, m in samples if t >= a.minutes * 30]), 3
        ),
        "rss_mb_every_10min": [round(m, 1) for t, m in samples if int(t) % 600 < 10],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

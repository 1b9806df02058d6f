"""How long the stream pauses when a second scale-out instance joins: librdkafka's default
(eager) assignors against cooperative-sticky (issue 14, README "Scale-out").

    python3 scripts/rebalance_pause.py BOOTSTRAP eager|cooperative RATE SECONDS JOIN

Produces chat webhooks at RATE a second for SECONDS to a new 6-partition topic. Instance a
runs alone; b joins JOIN seconds after the traffic starts. Samples
consent_ledger_records_read_total of both every 100 ms, and prints the longest stretch after
b's start in which neither read a record (up to the moment everything was read), when b read
its first, and how much was read in all. Needs confluent-kafka (PyPI) and a built binary
(CONSENT_LEDGER_BIN, default target/debug/consent-ledger); the broker from scripts/kafka.sh.
"""
import json, os, subprocess, sys, tempfile, threading, time, urllib.request, uuid
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

boot, strategy, rate, seconds, join = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CONSENT_LEDGER_BIN", os.path.join(ROOT, "target/debug/consent-ledger"))
p = f"pause.{strategy}.{uuid.uuid4().hex[:8]}"
admin = AdminClient({"bootstrap.servers": boot})
admin.create_topics([NewTopic(f"{p}.inbound", 6, 1)])[f"{p}.inbound"].result()
template = open(os.path.join(ROOT, "examples/whatsapp-webhooks.jsonl")).readline()
props = '"session.timeout.ms" = "6000"\n"heartbeat.interval.ms" = "1000"\n'
if strategy == "cooperative":
    props += '"partition.assignment.strategy" = "cooperative-sticky"\n'
config = f"""[kafka]
scale_out = true
group_id = "{p}.group"
partitions = 6
[kafka.topics]
inbound = "{p}.inbound"
sent = "{p}.sent"
consent_events = "{p}.events"
outbound = "{p}.outbound"
dead_letter = "{p}.dlq"
ledger = "{p}.ledger"
keys = "{p}.keys"
[kafka.properties]
{props}
[tenants.acme]
phone_number_ids = ["106540352242922"]
"""
env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=boot,
           CONSENT_LEDGER_MASTER_KEY="c2NhbGUtb3V0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=",
           CONSENT_LEDGER_SIGNING_KEY="c2NhbGUtb3V0LXNpZ25pbmcta2V5LTMyLWJ5dGVzISE=")

def start(name):
    d = tempfile.mkdtemp(prefix=f"pause-{name}-")
    open(f"{d}/config.toml", "w").write(config)
    out = open(f"{d}/out", "w+")
    proc = subprocess.Popen([BIN, "--data-dir", f"{d}/data", "--config", f"{d}/config.toml", "run", "--listen", "127.0.0.1:0"],
                            stdout=out, stderr=open(f"{d}/err", "w"), env=env)
    for _ in range(600):
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on "):
                return proc, line.split()[-1], d
        time.sleep(0.1)
    raise SystemExit(f"{name} never listened: {open(d + '/err').read()[-2000:]}")

def read(addr):
    try:
        text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=2).read().decode()
    except Exception:
        return None
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("consent_ledger_records_read_total"))

def produce():
    pr = Producer({"bootstrap.servers": boot, "linger.ms": 5})
    t0 = time.time()
    for i in range(rate * seconds):
        due = t0 + i / rate
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        num = f"3361{i % 50000:07d}"
        body = template.replace("33612345678", num).replace("wamid.HBgLMzM2MTIzNDU2NzgVAgASGBQzQUI1RjY1QjA0RTJBMTQ4MDFBMQA=", f"wamid.p.{i}")
        pr.produce(f"{p}.inbound", body.encode(), key=f"acme:+{num}".encode())
        pr.poll(0)
    pr.flush()

a, a_addr, _ = start("a")
while True:
    try:
        if urllib.request.urlopen(f"http://{a_addr}/readyz", timeout=2).status == 200:
            break
    except Exception:
        pass
    time.sleep(0.1)
producer = threading.Thread(target=produce)
producer.start()
time.sleep(join)
b_started = time.time()
b, b_addr, _ = start("b")
samples = []
end = time.time() + seconds - join + 20
while time.time() < end:
    ra, rb = read(a_addr), read(b_addr)
    samples.append((time.time() - b_started, ra or 0, rb or 0))
    time.sleep(0.1)
producer.join()
total = [(t, x + y) for t, x, y in samples]
# Up to the moment everything produced was read: after it, no progress is no stall.
total = [(t, n) for t, n in total if n < rate * seconds] + [next(((t, n) for t, n in total if n >= rate * seconds), total[-1])]
longest, run_start, last = 0.0, None, None
for t, n in total:
    if last is not None and n == last:
        run_start = run_start if run_start is not None else prev_t
        longest = max(longest, t - run_start)
    else:
        run_start = None
    last, prev_t = n, t
first_b = next((t for t, _, y in samples if y > 0), None)
print(f"{strategy}: longest stall after b started {longest:.2f} s; b's first record at {first_b} s; read {total[-1][1]:.0f} of {rate * seconds}")
for proc in (a, b):
    proc.terminate()
    proc.wait()

#!/usr/bin/env python3
"""The PostgreSQL peer of issue 13: what a team would write instead of consent-ledger.

A confluent-kafka consumer reads WhatsApp webhooks, decodes each with json, classifies the
message text by an exact keyword set (trimmed, case-insensitive) and upserts one row per
consent keyword into PostgreSQL (INSERT ... ON CONFLICT (contact) DO UPDATE), one
transaction per consumed batch (consume(num_messages=500)). Offsets are committed only after
the transaction commits: the durability contract of `consent-ledger run` (a record counts
once its batch is durable, then its offsets are committed). It is a peer for the benchmark,
not a product: no phone-number normalization beyond "+", no typo or phrase handling.

    pg_peer.py --bootstrap HOST:PORT --topic T --records N --dsn DSN [--group G]

Times from the first partition assignment to the commit of the N-th record, like
scripts/bench.sh times `run` from /readyz. Prints one line on stdout:
    peer RECORDS SECONDS UPSERTS ROWS TABLE_BYTES
and the same in words on stderr. The table is dropped and created again at the start.
"""

import argparse
import json
import sys
import time

import psycopg
from confluent_kafka import Consumer, KafkaException

OPT_OUT = {
    "STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
    "ARRET", "ARRÊT", "BAJA", "ABMELDEN", "DESINSCRIRE", "DÉSINSCRIRE",
}
OPT_IN = {"START", "UNSTOP", "ALTA", "ANMELDEN"}

UPSERT = """
INSERT INTO consent (contact, status, message_id, at, topic, kafka_partition, kafka_offset)
VALUES (%s, %s, %s, to_timestamp(%s), %s, %s, %s)
ON CONFLICT (contact) DO UPDATE SET status = EXCLUDED.status, message_id = EXCLUDED.message_id,
    at = EXCLUDED.at, topic = EXCLUDED.topic, kafka_partition = EXCLUDED.kafka_partition,
    kafka_offset = EXCLUDED.kafka_offset
"""


def classify(message):
    """The consent status a message asks for, or None."""
    kind = message.get("type")
    if kind == "text":
        text = message.get("text", {}).get("body", "")
    elif kind == "button":
        text = message.get("button", {}).get("payload", "")
    else:
        return None
    word = text.strip().upper()
    if word in OPT_OUT:
        return "opted_out"
    if word in OPT_IN:
        return "opted_in"
    return None


def rows(record):
    """The upserts of one Kafka record (a webhook may carry several messages)."""
    try:
        webhook = json.loads(record.value())
    except (ValueError, TypeError):
        return
    for entry in webhook.get("entry", ()):
        for change in entry.get("changes", ()):
            for message in change.get("value", {}).get("messages", ()):
                status = classify(message)
                if status and message.get("from"):
                    yield ("+" + message["from"], status, message.get("id"),
                           int(message.get("timestamp", 0)), record.topic(),
                           record.partition(), record.offset())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--group", default=f"pg-peer-{time.time_ns()}")
    a = p.parse_args()

    db = psycopg.connect(a.dsn)
    settings = {k: db.execute(f"SHOW {k}").fetchone()[0]
                for k in ("server_version", "fsync", "synchronous_commit")}
    db.execute("DROP TABLE IF EXISTS consent")
    db.execute("""CREATE TABLE consent (contact text PRIMARY KEY, status text NOT NULL,
        message_id text, at timestamptz, topic text, kafka_partition int, kafka_offset bigint)""")
    db.commit()

    started = []
    consumer = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([a.topic], on_assign=lambda c, parts: started or started.append(time.monotonic()))
    read = upserts = 0
    deadline = time.monotonic() + 1800
    while read < a.records:
        if time.monotonic() > deadline:
            sys.exit(f"pg_peer: {read} of {a.records} records after 30 min")
        batch = consumer.consume(num_messages=500, timeout=1.0)
        good = []
        for record in batch:
            if record.error():
                raise KafkaException(record.error())
            good.append(record)
        if not good:
            continue
        upsert = [r for record in good for r in rows(record)]
        with db.transaction():
            if upsert:
                db.cursor().executemany(UPSERT, upsert)
        consumer.commit(asynchronous=False)
        read += len(good)
        upserts += len(upsert)
    seconds = time.monotonic() - started[0]
    consumer.close()
    count = db.execute("SELECT count(*) FROM consent").fetchone()[0]
    size = db.execute("SELECT pg_total_relation_size('consent')").fetchone()[0]
    db.close()
    print(f"pg_peer: PostgreSQL {settings['server_version']} (fsync {settings['fsync']}, "
          f"synchronous_commit {settings['synchronous_commit']}): {read} records in "
          f"{seconds:.2f} s = {read / seconds:.0f} records/s; {upserts} upserts, {count} rows, "
          f"{size} bytes ({size / max(count, 1):.0f} per row)", file=sys.stderr)
    print(f"peer {read} {seconds:.3f} {upserts} {count} {size}")


if __name__ == "__main__":
    main()

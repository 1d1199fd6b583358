"""Read a topic with confluent-kafka (librdkafka) and print every record byte-exact, one JSON per line.

usage: consume_exact.py BOOTSTRAP TOPIC COUNT [TIMEOUT_S] [ISOLATION]
ISOLATION: librdkafka's isolation.level, read_committed (its default) or read_uncommitted.
Each line: {"partition", "offset", "key" (hex or null), "value" (hex or null), "headers": [[k, hex]]}.
Exits 0 after COUNT records, 1 on timeout (with what it got so far printed).
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    isolation = sys.argv[5] if len(sys.argv) > 5 else "read_committed"
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "avro-edge-peer-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "isolation.level": isolation,
    })
    c.subscribe([topic])
    got = 0
    deadline = time.time() + timeout
    try:
        while got < count and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                print(json.dumps({"error": str(m.error())}), file=sys.stderr)
                continue
            print(json.dumps({
                "partition": m.partition(),
                "offset": m.offset(),
                "key": None if m.key() is None else m.key().hex(),
                "value": None if m.value() is None else m.value().hex(),
                "headers": [[k, None if v is None else v.hex()] for k, v in (m.headers() or [])],
            }), flush=True)
            got += 1
    finally:
        c.close()
    sys.exit(0 if got >= count else 1)


if __name__ == "__main__":
    main()

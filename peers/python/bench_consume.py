"""librdkafka (confluent-kafka) consumer side of benches/yardsticks.rs: read N records of a topic.

usage: bench_consume.py BOOTSTRAP TOPIC N
A fresh group from the earliest offset; counts records (raw bytes, nothing decoded). The clock starts before the
consumer is created (connect and group join included, like the Rust side's total). Prints one JSON line:
msgs (records read), bytes (value bytes), secs, vmhwm_kb (peak RSS, read after close).
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError


def vmhwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main():
    bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    start = time.perf_counter()
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "bench-librdkafka-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    got, size = 0, 0
    deadline = time.time() + 300
    last = start
    while got < n and time.time() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.5):
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    print(json.dumps({"error": str(m.error())}), file=sys.stderr)
                continue
            got += 1
            size += len(m.value() or b"")
        last = time.perf_counter()
    c.close()
    print(json.dumps({"msgs": got, "bytes": size, "secs": last - start, "vmhwm_kb": vmhwm_kb()}))


if __name__ == "__main__":
    main()

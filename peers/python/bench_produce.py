"""librdkafka (confluent-kafka) side of benches/producer.rs: produce N SensorData-sized records.

usage: bench_produce.py BOOTSTRAP TOPIC N
Records are built before timing starts, exactly like the Rust side: key b"sensor-<i % 100>",
value = Confluent frame header (0x00 + schema id 1) + 35 payload bytes (40 bytes).
Settings: acks=all, linger.ms=5. Prints one JSON line: msgs, secs, failed, vmhwm_kb (peak RSS).
"""
import json
import sys
import time

from confluent_kafka import Producer


def vmhwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main():
    bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    records = [(b"sensor-%d" % (i % 100), b"\x00\x00\x00\x00\x01" + bytes((i + j) % 251 for j in range(35)))
               for i in range(n)]
    failed = [0]

    def on_delivery(err, _msg):
        if err is not None:
            failed[0] += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    start = time.perf_counter()
    for k, v in records:
        while True:
            try:
                p.produce(topic, value=v, key=k, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    remaining = p.flush(120)
    secs = time.perf_counter() - start
    print(json.dumps({"msgs": n, "secs": secs, "failed": failed[0] + remaining, "vmhwm_kb": vmhwm_kb()}))


if __name__ == "__main__":
    main()

"""librdkafka (confluent-kafka) side of benches/producer.rs: produce N SensorData-sized records.

usage: bench_produce.py BOOTSTRAP TOPIC N DISTINCT
Same work as the Rust side: DISTINCT records (1,000 from the bench) are built before timing starts and
cycled N times (record i is records[i % DISTINCT]), so memory does not grow with N, as in a forwarder
that streams. Record j: key b"sensor-<j % 100>", value = Confluent frame header (0x00 + schema id 1)
+ 35 payload bytes ((j + k) % 251 for k in 0..35): 40 bytes. Topic metadata is fetched before timing
starts (the Rust side calls Producer::partitions). Settings: acks=all, linger.ms=5.
Prints one JSON line: msgs, acked, secs, failed, vmhwm_kb (peak RSS, read after the flush like the Rust side).
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
    bootstrap, topic, n, distinct = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    records = [(b"sensor-%d" % (i % 100), b"\x00\x00\x00\x00\x01" + bytes((i + j) % 251 for j in range(35)))
               for i in range(distinct)]
    acked = [0]
    failed = [0]

    def on_delivery(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            failed[0] += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    p.list_topics(topic, timeout=30)  # warm-up, as the Rust side's Producer::partitions
    start = time.perf_counter()
    for i in range(n):
        k, v = records[i % distinct]
        while True:
            try:
                p.produce(topic, value=v, key=k, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    remaining = p.flush(120)
    secs = time.perf_counter() - start
    print(json.dumps({"msgs": n, "acked": acked[0], "secs": secs, "failed": failed[0] + remaining,
                      "vmhwm_kb": vmhwm_kb()}))


if __name__ == "__main__":
    main()

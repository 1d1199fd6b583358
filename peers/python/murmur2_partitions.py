"""Partition choice of kafka-python's DefaultPartitioner (Java-compatible murmur2) for given keys.

stdin: {"partitions": N, "keys": ["<hex>", ...]}; stdout: [partition, ...] in key order.
Used by tests/kafka/producer.rs to check our partitioner against an independent implementation.
"""
import json
import sys

from kafka.partitioner.default import murmur2


def main():
    req = json.load(sys.stdin)
    n = req["partitions"]
    # kafka-python's DefaultPartitioner.partition(): murmur2(key) & 0x7fffffff, modulo the partition count.
    out = [(murmur2(bytes.fromhex(k)) & 0x7FFFFFFF) % n for k in req["keys"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

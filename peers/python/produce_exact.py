"""Produce records byte-exact with confluent-kafka (librdkafka): the writing side of consume_exact.py.

usage: produce_exact.py BOOTSTRAP TOPIC [COMPRESSION] < lines
Each stdin line is `key_hex value_hex` as for peers/java/Peer.java (key `-` for none, value `-` for a
tombstone, an empty value_hex for an empty value). Produced in order with acks=all, linger.ms=5 and
compression.type COMPRESSION (none, gzip, snappy, lz4, zstd; default none), librdkafka's default
partitioner (consistent_random: murmur2 is not its default, so callers should not check partitions).
Prints `acked N`. Exit 1 on any failure, with the reason on stderr.
"""
import sys

from confluent_kafka import Producer


def unhex(s):
    return None if s == "-" else bytes.fromhex(s)


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    compression = sys.argv[3] if len(sys.argv) > 3 else "none"
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "compression.type": compression})
    errors = []
    acked = [0]

    def done(err, _msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    n = 0
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if not line:
            continue
        kv = line.split(" ")
        if len(kv) != 2:
            print(f"produce_exact: want `key_hex value_hex`: {line!r}", file=sys.stderr)
            sys.exit(1)
        p.produce(topic, key=unhex(kv[0]), value=unhex(kv[1]), on_delivery=done)
        p.poll(0)
        n += 1
    left = p.flush(60)
    if left or errors or acked[0] != n:
        print(f"produce_exact: {left} undelivered, {acked[0]} of {n} acked, errors: {errors}",
              file=sys.stderr)
        sys.exit(1)
    print(f"acked {n}", flush=True)


if __name__ == "__main__":
    main()

"""Consume a topic with confluent-kafka and decode every value with AvroDeserializer (writer schema
fetched from the registry by id).

usage: avro_consume.py BOOTSTRAP REGISTRY_URL TOPIC COUNT [TIMEOUT_S]
Prints one line per message: {"key": str|null, "value": hex, "decoded": natural JSON} or
{"key", "value", "error": "..."} when decoding fails. Exit 1 if COUNT messages did not arrive in time.
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from avro_common import to_json


def main():
    bootstrap, registry, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    de = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "avro-edge-avro-peer-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
    })
    c.subscribe([topic])
    ctx = SerializationContext(topic, MessageField.VALUE)
    got = 0
    deadline = time.time() + timeout
    try:
        while got < count and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    print(json.dumps({"kafka_error": str(m.error())}), file=sys.stderr)
                continue
            out = {"key": None if m.key() is None else m.key().decode("utf-8", "replace"),
                   "value": m.value().hex()}
            try:
                out["decoded"] = to_json(de(m.value(), ctx))
            except Exception as e:  # reported per message, the test decides
                out["error"] = f"{type(e).__name__}: {e}"
            print(json.dumps(out), flush=True)
            got += 1
    finally:
        c.close()
    sys.exit(0 if got >= count else 1)


if __name__ == "__main__":
    main()

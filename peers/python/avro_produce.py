"""Produce natural-JSON records with confluent-kafka's AvroSerializer (librdkafka + fastavro).

usage: avro_produce.py BOOTSTRAP REGISTRY_URL TOPIC SCHEMA_FILE < lines
Each stdin line: {"key": str, "record": {...natural JSON...}}. The serializer runs with its defaults
(auto.register.schemas=True, TopicNameStrategy: subject TOPIC-value). Prints {"produced": n, "ids": [...]}
where ids are the schema ids framed into each value (in input order). Exit 1 on any failure.
"""
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from avro_common import to_python


def main():
    bootstrap, registry, topic, schema_file = sys.argv[1:5]
    schema_str = open(schema_file, encoding="utf-8").read()
    schema = json.loads(schema_str)
    client = SchemaRegistryClient({"url": registry})
    ser = AvroSerializer(client, schema_str)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []

    def done(err, _msg):
        if err is not None:
            errors.append(str(err))

    ids = []
    n = 0
    ctx = SerializationContext(topic, MessageField.VALUE)
    for line in sys.stdin:
        if not line.strip():
            continue
        item = json.loads(line)
        value = ser(to_python(item["record"], schema), ctx)
        ids.append(int.from_bytes(value[1:5], "big"))
        p.produce(topic, key=item["key"].encode(), value=value, on_delivery=done)
        p.poll(0)
        n += 1
    left = p.flush(30)
    if left or errors:
        print(f"avro_produce: {left} undelivered, errors: {errors}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"produced": n, "ids": ids}), flush=True)


if __name__ == "__main__":
    main()

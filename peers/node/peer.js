#!/usr/bin/env node
// kafkajs peer for avro-edge interop tests: the reference service's own libraries (kafkajs and
// @kafkajs/confluent-schema-registry) producing what we consume and consuming what we produce.
//
//   node peer.js produce --brokers B --topic T [--registry URL --subject S] < lines
//     without --registry each stdin line is {"key": hex|null, "value": hex, "partition"?: n,
//     "headers"?: {name: hex}}, sent byte for byte; with --registry each line is a natural-JSON
//     record, or {"key": utf8 string, "record": natural JSON}, encoded with the latest schema of
//     subject S ("NaN"/"Infinity"/"-Infinity" strings become numbers in float/double fields).
//     Prints {"produced": n}.
//   node peer.js consume --brokers B --topic T --group G --count N [--timeout S] [--registry URL]
//     reads from the beginning until N messages (or the timeout) and prints one line per message:
//     {"topic","partition","offset","key": hex|null,"value": hex|null,"headers": {name: hex}}
//     plus "decoded" (the registry-decoded value) with --registry, or "error" if decoding failed.
//     With --duration S instead of --count it stays in the group for S seconds, prints a
//     {"joined": true, "partitions": [...]} line each time the group assigns it partitions, and
//     then leaves (used for mixed kafkajs/avro-edge groups). With --quiet it prints no message
//     lines, only {"count", "decoded"/"failed" (with --registry, values are still decoded),
//     "secs" (first to last message), "total_secs" (from before connect to the last message,
//     group join included), "rss_kb"} at the end. --assigner roundrobin offers kafkajs's
//     round-robin assigner under Java's protocol name `roundrobin` (kafkajs calls it
//     `RoundRobinAssigner`, which no other client offers, so a mixed group needs the rename).
//
// Logs go to stderr; stdout carries only the JSON lines above. Exit 1 on any failure.
'use strict';

const { Kafka, logLevel, PartitionAssigners } = require('kafkajs');
const readline = require('readline');

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const k = a.slice(2);
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) {
        out[k] = true;
      } else {
        out[k] = v;
        i++;
      }
    } else {
      out._.push(a);
    }
  }
  return out;
}

function hex(buf) {
  return buf === null || buf === undefined ? null : Buffer.from(buf).toString('hex');
}

// JSON has no NaN, infinities or negative zero: they are written as the strings "NaN",
// "Infinity", "-Infinity" (the fixtures' natural-JSON convention) and "-0.0".
function jsonSafe(_key, value) {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'NaN';
    if (value === Infinity) return 'Infinity';
    if (value === -Infinity) return '-Infinity';
    if (Object.is(value, -0)) return '-0.0';
  }
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
    return Buffer.from(value.data).toString('base64');
  }
  return value;
}

function client(args) {
  if (!args.brokers) throw new Error('--brokers is required');
  return new Kafka({
    clientId: 'avro-edge-node-peer',
    brokers: String(args.brokers).split(','),
    logLevel: logLevel.ERROR,
    logCreator: () => ({ namespace, log }) =>
      process.stderr.write(`[kafkajs ${namespace}] ${JSON.stringify(log)}\n`),
  });
}

function registry(args) {
  if (!args.registry) return null;
  const { SchemaRegistry } = require('@kafkajs/confluent-schema-registry');
  return new SchemaRegistry({ host: String(args.registry) });
}

// Natural JSON -> what avsc encodes: the strings "NaN", "Infinity" and "-Infinity" become numbers
// where the schema has a float or double (guided by the schema, so string fields stay strings).
const SPECIAL = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };
function fromNatural(value, schema, names) {
  if (typeof schema === 'string') {
    if ((schema === 'float' || schema === 'double') && typeof value === 'string' && value in SPECIAL) {
      return SPECIAL[value];
    }
    return names[schema] ? fromNatural(value, names[schema], names) : value;
  }
  if (Array.isArray(schema)) {
    if (value === null) return null;
    const isNum = (b) => b === 'float' || b === 'double';
    const branch =
      schema.find((b) => isNum(b) && (typeof value === 'number' || value in SPECIAL)) ||
      schema.find((b) => b !== 'null' && !isNum(b));
    return branch === undefined ? value : fromNatural(value, branch, names);
  }
  if (schema.name) names[schema.name] = schema;
  if (schema.type === 'record') {
    const out = {};
    for (const f of schema.fields) if (f.name in value) out[f.name] = fromNatural(value[f.name], f.type, names);
    return out;
  }
  if (schema.type === 'array') return value.map((v) => fromNatural(v, schema.items, names));
  if (schema.type === 'map') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = fromNatural(v, schema.values, names);
    return out;
  }
  return fromNatural(value, schema.type, names);
}

async function produce(args) {
  const kafka = client(args);
  const reg = registry(args);
  let schemaId = null;
  let schemaJson = null;
  if (reg) {
    if (!args.subject) throw new Error('--subject is required with --registry');
    schemaId = await reg.getLatestSchemaId(String(args.subject));
    schemaJson = (await reg.getSchema(schemaId)).schema();
  }
  const messages = [];
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const obj = JSON.parse(line);
    if (reg && obj.record !== undefined) {
      // {"key": utf8 string, "record": natural JSON}
      messages.push({
        key: obj.key === undefined || obj.key === null ? null : Buffer.from(String(obj.key)),
        value: await reg.encode(schemaId, fromNatural(obj.record, schemaJson, {})),
      });
    } else if (reg) {
      messages.push({ value: await reg.encode(schemaId, obj) });
    } else {
      const m = {
        key: obj.key === null || obj.key === undefined ? null : Buffer.from(obj.key, 'hex'),
        value: obj.value === null ? null : Buffer.from(obj.value, 'hex'),
      };
      if (obj.partition !== undefined) m.partition = obj.partition;
      if (obj.headers) {
        m.headers = {};
        for (const [k, v] of Object.entries(obj.headers)) m.headers[k] = Buffer.from(v, 'hex');
      }
      messages.push(m);
    }
  }
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    // One call keeps the order; kafkajs splits by partition itself.
    await producer.send({ topic: String(args.topic), acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
  process.stdout.write(JSON.stringify({ produced: messages.length }) + '\n');
}

async function consume(args) {
  const kafka = client(args);
  const reg = registry(args);
  const want = Number(args.count || 0);
  const duration = args.duration ? Number(args.duration) * 1000 : 0;
  const timeoutMs = duration || Number(args.timeout || 60) * 1000;
  const consumer = kafka.consumer({
    groupId: String(args.group || `avro-edge-node-peer-${process.pid}`),
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    rebalanceTimeout: 6000,
    ...(args.assigner === 'roundrobin'
      ? {
          partitionAssigners: [
            ({ cluster }) => ({ ...PartitionAssigners.roundRobin({ cluster }), name: 'roundrobin' }),
          ],
        }
      : {}),
  });
  const quiet = Boolean(args.quiet);
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    if (quiet) return;
    const parts = e.payload.memberAssignment[String(args.topic)] || [];
    process.stdout.write(JSON.stringify({ joined: true, partitions: parts }) + '\n');
  });
  // --quiet's total_secs starts before connect, like the Rust side of benches/consumer.rs.
  const startAt = process.hrtime.bigint();
  await consumer.connect();
  await consumer.subscribe({ topic: String(args.topic), fromBeginning: true });
  let seen = 0;
  let firstAt = 0n;
  let decoded = 0;
  let failed = 0;
  let lastAt = 0n;
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  const timer = setTimeout(() => finish('timeout'), timeoutMs);
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      if (seen >= want && want > 0) return;
      if (quiet) {
        if (seen === 0) firstAt = process.hrtime.bigint();
        if (reg && message.value) {
          try {
            await reg.decode(message.value);
            decoded++;
          } catch (e) {
            failed++;
          }
        }
        seen++;
        lastAt = process.hrtime.bigint();
        if (want > 0 && seen >= want) finish('done');
        return;
      }
      const out = {
        topic,
        partition,
        offset: Number(message.offset),
        key: hex(message.key),
        value: hex(message.value),
        headers: {},
      };
      for (const [k, v] of Object.entries(message.headers || {})) out.headers[k] = hex(v);
      if (reg && message.value) {
        try {
          out.decoded = await reg.decode(message.value);
        } catch (e) {
          out.error = String(e && e.message ? e.message : e);
        }
      }
      process.stdout.write(JSON.stringify(out, jsonSafe) + '\n');
      seen++;
      if (want > 0 && seen >= want) finish('done');
    },
  });
  const why = await done;
  clearTimeout(timer);
  await consumer.disconnect();
  if (quiet) {
    const secs = Number(lastAt - firstAt) / 1e9;
    const totalSecs = Number(lastAt - startAt) / 1e9;
    const rss = require('fs')
      .readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmHWM:'));
    const rssKb = rss ? Number(rss.split(/\s+/)[1]) : -1;
    process.stdout.write(JSON.stringify({ count: seen, decoded, failed, secs, total_secs: totalSecs, rss_kb: rssKb }) + '\n');
  }
  if (why === 'timeout' && want > 0 && !duration) {
    throw new Error(`timed out after ${seen} of ${want} messages`);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const cmd = args._[0];
  if (!args.topic) throw new Error('--topic is required');
  if (cmd === 'produce') return produce(args);
  if (cmd === 'consume') return consume(args);
  throw new Error(`unknown command ${cmd}: use produce or consume`);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`peer.js: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);

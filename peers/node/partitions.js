#!/usr/bin/env node
// Partition choice of kafkajs's own default partitioner (Partitioners.DefaultPartitioner, the
// Java-compatible murmur2 one) for given keys, to check ours against an independent implementation.
//
//   node partitions.js < {"partitions": [N, ...], "keys": ["<hex>", ...]}
//   stdout: {"N": [partition, ...] (in key order), ...}
'use strict';

const { Partitioners } = require('kafkajs');

let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const out = {};
  for (const n of req.partitions) {
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 0 }));
    out[n] = req.keys.map((k) =>
      partitioner({ topic: 't', partitionMetadata, message: { key: Buffer.from(k, 'hex') } }),
    );
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});

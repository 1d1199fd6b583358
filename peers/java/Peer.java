// Java peer for avro-edge interop tests: Apache Kafka's own Java client (kafka-clients) producing
// what we consume and consuming what we produce, byte for byte. Uses only kafka-clients; run it
// with the JDK's single-file source launcher (no build step, no compiled class in the tree):
//
//   java -cp "$KAFKA_LIBS/*" peers/java/Peer.java produce BOOTSTRAP TOPIC [COMPRESSION] < lines
//     each stdin line is `key_hex value_hex` (key `-` for none, value `-` for a tombstone, an
//     empty value_hex for an empty value); produced in order with acks=all, compression.type
//     COMPRESSION (none, gzip, snappy, lz4, zstd; default none) and the default partitioner
//     (murmur2 for keyed records), then flushed. Prints `acked N`.
//   java -cp "$KAFKA_LIBS/*" peers/java/Peer.java consume BOOTSTRAP TOPIC GROUP N TIMEOUT_MS [ISOLATION]
//     subscribes as GROUP from the earliest offset and prints `partition offset key_hex value_hex`
//     (`-` for a null key or value) per record until N records arrived; exits 1 if the timeout
//     passes first (after printing what it got). ISOLATION is the consumer's isolation.level
//     (read_uncommitted, Java's default, or read_committed). With N = 0 it reads until the timeout
//     and exits 0 (to show that nothing more arrives).
//   java -cp "$KAFKA_LIBS/*" peers/java/Peer.java transactions BOOTSTRAP TOPIC N
//     with one transactional producer, on partition 0 of TOPIC: a transaction of N records
//     `aborted-I` that it aborts, one of N records `committed-I` that it commits, then one of N
//     records `open-I` that it leaves open, and after it one record `after-open` from a plain
//     producer. Prints `open FIRST_OFFSET` (the open transaction's first offset) and waits for
//     stdin to close; then aborts the open transaction and prints `aborted`.
//
// stdout carries only the lines above: anything the client's logging writes to System.out is sent
// to stderr instead. Exit 1 on any failure, with the reason on stderr.

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Peer {
    // The real stdout, before System.out is pointed at stderr (log4j's default console appender
    // writes to System.out).
    private static final PrintStream OUT = new PrintStream(
            new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);

    public static void main(String[] args) {
        System.setOut(System.err);
        try {
            if ((args.length == 3 || args.length == 4) && args[0].equals("produce")) {
                produce(args[1], args[2], args.length == 4 ? args[3] : "none");
            } else if ((args.length == 6 || args.length == 7) && args[0].equals("consume")) {
                consume(args[1], args[2], args[3], Integer.parseInt(args[4]), Long.parseLong(args[5]),
                        args.length == 7 ? args[6] : "read_uncommitted");
            } else if (args.length == 4 && args[0].equals("transactions")) {
                transactions(args[1], args[2], Integer.parseInt(args[3]));
            } else {
                throw new IllegalArgumentException(
                        "usage: produce BOOTSTRAP TOPIC [COMPRESSION] | consume BOOTSTRAP TOPIC GROUP N TIMEOUT_MS [ISOLATION]"
                                + " | transactions BOOTSTRAP TOPIC N");
            }
            OUT.flush();
            System.exit(0);
        } catch (Throwable e) {
            OUT.flush();
            System.err.println("Peer.java: " + e);
            e.printStackTrace(System.err);
            System.exit(1);
        }
    }

    static void produce(String bootstrap, String topic, String compression) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "avro-edge-java-peer");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.endsWith("\r")) line = line.substring(0, line.length() - 1);
                if (line.isEmpty()) continue;
                // One space exactly, so an empty value (`6b31 `) stays an empty value.
                String[] kv = line.split(" ", -1);
                if (kv.length != 2) throw new IllegalArgumentException("want `key_hex value_hex`: " + line);
                acks.add(producer.send(new ProducerRecord<>(topic, unhex(kv[0]), unhex(kv[1]))));
            }
            producer.flush();
            for (Future<RecordMetadata> f : acks) f.get();
        }
        OUT.println("acked " + acks.size());
    }

    static void consume(String bootstrap, String topic, String group, int want, long timeoutMs,
            String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "avro-edge-java-peer");
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        int seen = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            consumer.subscribe(List.of(topic));
            while (want == 0 || seen < want) {
                long left = (deadline - System.nanoTime()) / 1_000_000L;
                if (left <= 0) break;
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(Math.min(left, 500)))) {
                    if (want > 0 && seen >= want) break;
                    OUT.println(r.partition() + " " + r.offset() + " " + hex(r.key()) + " " + hex(r.value()));
                    seen++;
                }
                OUT.flush();
            }
        }
        if (seen < want) {
            throw new IllegalStateException("timed out after " + seen + " of " + want + " records");
        }
    }

    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "avro-edge-java-peer");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return p;
    }

    /** Send `prefix-0` .. `prefix-(n-1)` to partition 0; the offset of the first. */
    static long sendAll(KafkaProducer<byte[], byte[]> producer, String topic, String prefix, int n)
            throws Exception {
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            byte[] value = (prefix + "-" + i).getBytes(StandardCharsets.UTF_8);
            acks.add(producer.send(new ProducerRecord<>(topic, 0, null, value)));
        }
        producer.flush();
        return acks.get(0).get().offset();
    }

    static void transactions(String bootstrap, String topic, int n) throws Exception {
        Properties p = producerProps(bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "avro-edge-peer-" + topic);
        try (KafkaProducer<byte[], byte[]> txn = new KafkaProducer<>(p);
                KafkaProducer<byte[], byte[]> plain = new KafkaProducer<>(producerProps(bootstrap))) {
            txn.initTransactions();
            txn.beginTransaction();
            sendAll(txn, topic, "aborted", n);
            txn.abortTransaction();
            txn.beginTransaction();
            sendAll(txn, topic, "committed", n);
            txn.commitTransaction();
            txn.beginTransaction();
            long open = sendAll(txn, topic, "open", n);
            plain.send(new ProducerRecord<>(topic, 0, null, "after-open".getBytes(StandardCharsets.UTF_8))).get();
            OUT.println("open " + open);
            OUT.flush();
            while (System.in.read() != -1) {
                // wait for the test to close stdin
            }
            txn.abortTransaction();
        }
        OUT.println("aborted");
    }

    static String hex(byte[] b) {
        if (b == null) return "-";
        StringBuilder s = new StringBuilder(b.length * 2);
        for (byte x : b) s.append(String.format("%02x", x & 0xff));
        return s.toString();
    }

    static byte[] unhex(String s) {
        if (s.equals("-")) return null;
        if (s.length() % 2 != 0) throw new IllegalArgumentException("odd-length hex: " + s);
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }
}

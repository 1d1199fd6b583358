# Shared settings for the project's scripts (sourced, not run).
# Everything slow to build or download is cached outside the clone, keyed by version.
AVRO_EDGE_CACHE="${AVRO_EDGE_CACHE:-$HOME/.cache/avro-edge}"
TANSU_VERSION="0.6.0"
TANSU_ROOT="$AVRO_EDGE_CACHE/tansu-$TANSU_VERSION"
export TANSU_BIN="${TANSU_BIN:-$TANSU_ROOT/bin/tansu}"
# Apache Kafka (KRaft), run from its jars; keep in step with scripts/kafka/pom.xml and testkit/src/kafka/mod.rs.
KAFKA_VERSION="4.1.1"
export KAFKA_LIBS="${KAFKA_LIBS:-$AVRO_EDGE_CACHE/kafka-$KAFKA_VERSION/libs}"
export AVRO_EDGE_VENV="${AVRO_EDGE_VENV:-$AVRO_EDGE_CACHE/venv}"
export AVRO_EDGE_PYTHON="${AVRO_EDGE_PYTHON:-$AVRO_EDGE_VENV/bin/python}"
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '==> %s\n' "$*" >&2; }

# free_ports N: N loopback ports free a moment ago, picked at random among the 12,000 below the kernel's
# ephemeral range (as the test kit's process::free_ports): a port from the ephemeral range (bind to 0) can be
# taken by any outgoing connection of a parallel test lane before the broker binds it.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
try:
    start = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    start = 32768
low = max(1024, start - 12000)
held, ports = [], list(range(low, start))
random.shuffle(ports)
for p in ports:
    if len(held) == n:
        break
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        held.append(s)
    except OSError:
        s.close()
if len(held) < n:
    sys.exit(f"only {len(held)} of {n} free loopback ports in {low}..{start}")
print(*[s.getsockname()[1] for s in held])
PY
}

# java_ok: whether `java` is on PATH and is Java 17 or newer (what Kafka 4 needs).
java_ok() {
  local v
  command -v java >/dev/null || return 1
  v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
  [ -n "$v" ] && [ "$v" -ge 17 ]
}

# start_tansu DIR: start tansu on a free loopback port with in-memory storage, logging to DIR/tansu.log.
# Sets BROKERS (host:port) and TANSU_PID; the caller stops it (kill "$TANSU_PID").
start_tansu() {
  local dir="$1" port i
  port="$(free_ports 1)"
  "$TANSU_BIN" broker \
    --kafka-listener-url "tcp://127.0.0.1:$port" \
    --kafka-advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" >"$dir/tansu.log" 2>&1 &
  TANSU_PID=$!
  BROKERS="127.0.0.1:$port"
  say "waiting for tansu to listen on $BROKERS (pid $TANSU_PID)"
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$TANSU_PID" 2>/dev/null; then
      cat "$dir/tansu.log" >&2; say "tansu exited"; return 1
    fi
    sleep 0.1
  done
  say "tansu did not listen on $BROKERS within 10 s"; return 1
}

# start_kafka DIR: start one Apache Kafka node (KRaft combined mode: broker + controller) on free loopback
# ports, data and logs under DIR (DIR/kafka.log). Needs scripts/install-kafka first.
# Sets BROKERS (host:port) and KAFKA_PID; the caller stops it (kill "$KAFKA_PID").
# Start-up (format + start, 2 cores): about 4 s on an idle machine; 8-11 s with load average ~11.
# Multi-node clusters and fault control (kill/stop/pause a node) are in testkit/src/kafka/mod.rs.
start_kafka() {
  local dir="$1" bport cport id i
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || { say "no kafka jars in $KAFKA_LIBS: run scripts/install-kafka"; return 1; }
  read -r bport cport < <(free_ports 2)
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cat >"$dir/log4j2.properties" <<'PROPS'
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
PROPS
  # C1 only (TieredStopAtLevel=1): half the start-up time on a busy 2-core machine (measured 10 s -> 4.4 s).
  # KAFKA_JVM_OPTS overrides it (e.g. KAFKA_JVM_OPTS= for full JIT when measuring broker throughput).
  # shellcheck disable=SC2206
  local jvm=(-Xmx512m -Xms256m -XX:+UseSerialGC ${KAFKA_JVM_OPTS--XX:TieredStopAtLevel=1} -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$dir/log4j2.properties")
  # As `kafka-storage random-uuid` (and the test kit): never a leading '-', which the tool's argument parser
  # takes for an option ("argument --cluster-id/-t: expected one argument"; 1 start in 64 failed so).
  id="$(python3 -c 'import base64,uuid; s=base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="); print("A"+s[1:] if s[0]=="-" else s)')"
  if ! java "${jvm[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$id" \
        -c "$dir/server.properties" >"$dir/kafka-format.log" 2>&1; then
    cat "$dir/kafka-format.log" >&2; say "kafka storage format failed"; return 1
  fi
  java "${jvm[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
  KAFKA_PID=$!
  BROKERS="127.0.0.1:$bport"
  say "waiting for kafka $KAFKA_VERSION on $BROKERS (pid $KAFKA_PID, log $dir/kafka.log)"
  # Ready = the broker registered with the controller and serves requests: the "started" line comes after both.
  for i in $(seq 1 600); do
    if grep -q 'Kafka Server started' "$dir/kafka.log" 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$bport") 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$KAFKA_PID" 2>/dev/null; then
      tail -n 40 "$dir/kafka.log" >&2; say "kafka exited (log: $dir/kafka.log)"; return 1
    fi
    sleep 0.1
  done
  tail -n 40 "$dir/kafka.log" >&2; say "kafka did not start on $BROKERS within 60 s (log: $dir/kafka.log)"; return 1
}

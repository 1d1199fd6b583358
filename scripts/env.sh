# Shared settings for the project's scripts (sourced, not run).
# Everything slow to build or download is cached outside the clone, keyed by version.
AVRO_EDGE_CACHE="${AVRO_EDGE_CACHE:-$HOME/.cache/avro-edge}"
TANSU_VERSION="0.6.0"
TANSU_ROOT="$AVRO_EDGE_CACHE/tansu-$TANSU_VERSION"
export TANSU_BIN="${TANSU_BIN:-$TANSU_ROOT/bin/tansu}"
export AVRO_EDGE_VENV="${AVRO_EDGE_VENV:-$AVRO_EDGE_CACHE/venv}"
export AVRO_EDGE_PYTHON="${AVRO_EDGE_PYTHON:-$AVRO_EDGE_VENV/bin/python}"
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '==> %s\n' "$*" >&2; }

# start_tansu DIR: start tansu on a free loopback port with in-memory storage, logging to DIR/tansu.log.
# Sets BROKERS (host:port) and TANSU_PID; the caller stops it (kill "$TANSU_PID").
start_tansu() {
  local dir="$1" port i
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
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

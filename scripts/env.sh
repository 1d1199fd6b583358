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

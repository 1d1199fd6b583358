//! The `avro-edge` binary: everything lives in [`avro_edge::cli`].
fn main() {
    std::process::exit(avro_edge::cli::main());
}

//! The client's `tracing` logs in a test's output: on when `RUST_LOG` is set (e.g.
//! `RUST_LOG=avro_edge=debug cargo test --test kafka_failover -- --nocapture`), off otherwise.
//!
//! Must not install anything when `RUST_LOG` is unset, nor fail when a subscriber is already set.

/// Send the client's logs to stderr with the `RUST_LOG` filter, once per test process.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

//! Test and demo support: start and stop a local `tansu` broker on a free loopback port.
//!
//! Must not be used by the forwarder itself; it exists for tests, benchmarks and the demo.

//! Typed Rust records for the seed schemas (`UserRegistration`, `Order`, `SensorData`).
//!
//! Must not carry a second copy of the schemas: their encoding is checked against `schemas/*.avsc`.

//! Avro schemas as text: parse `.avsc`, compare by parsed form, check compatibility.
//!
//! Must not encode or decode data (that is [`crate::codec`]) and must not do I/O.

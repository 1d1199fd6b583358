//! The blocking group consumer: join, assign, fetch, commit; records decoded through the codec.
//!
//! Must not drop a record it cannot decode: it returns it as an error item with its coordinates.

//! Serde support for the client's setting names ([`super::producer::Acks`],
//! [`super::record::Compression`], [`super::sasl::Mechanism`]): `Deserialize` goes through their
//! `FromStr`, so a serde config, the forwarder's config file and the CLI accept the same spellings.
//!
//! Must not parse anything itself: `FromStr` is the one parser.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Unexpected, Visitor};

use super::KafkaError;

/// Visits a string (or, with `integers`, an integer written as its decimal string) into `T`.
pub(crate) struct FromStrVisitor<T> {
    expecting: &'static str,
    integers: bool,
    _t: PhantomData<T>,
}

impl<T> FromStrVisitor<T> {
    pub(crate) fn new(expecting: &'static str, integers: bool) -> Self {
        FromStrVisitor {
            expecting,
            integers,
            _t: PhantomData,
        }
    }
}

impl<T: FromStr<Err = KafkaError>> Visitor<'_> for FromStrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|e| match e {
            KafkaError::Config(reason) => E::custom(reason),
            other => E::custom(other),
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        if self.integers {
            self.visit_str(&v.to_string())
        } else {
            Err(E::invalid_type(Unexpected::Signed(v), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        if self.integers {
            self.visit_str(&v.to_string())
        } else {
            Err(E::invalid_type(Unexpected::Unsigned(v), &self))
        }
    }
}

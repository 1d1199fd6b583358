//! Reading one value of a layer as a string, number, size, list, flag or named setting, with the
//! typed error that names the key.
//!
//! Must not know what a key means: the sections in `validate` do.

use std::net::SocketAddr;
use std::str::FromStr;

use toml::{Table, Value};

use super::{ConfigError, invalid};
use crate::kafka::KafkaError;

pub(super) fn get_str(t: &Table, key: &str) -> Result<Option<String>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            key,
            format!("expected a string, got {}", other.type_str()),
        )),
    }
}

pub(super) fn get_u64(t: &Table, key: &str) -> Result<Option<u64>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::Integer(i)) => u64::try_from(*i)
            .map(Some)
            .map_err(|_| invalid(key, "must not be negative")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid(key, format!("'{s}' is not a whole number"))),
        Some(other) => Err(invalid(
            key,
            format!("expected a number, got {}", other.type_str()),
        )),
    }
}

/// `true`/`false` (a TOML boolean, or the string from env/flags, any case).
pub(super) fn get_bool(t: &Table, key: &str) -> Result<Option<bool>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(invalid(key, format!("'{s}': expected true or false"))),
        },
        Some(other) => Err(invalid(
            key,
            format!("expected true or false, got {}", other.type_str()),
        )),
    }
}

/// A setting named by a string (integers are read as their decimal string: `acks = -1`), parsed by
/// its type's `FromStr`, the one parser the CLI uses too.
pub(super) fn get_parsed<T: FromStr<Err = KafkaError>>(
    t: &Table,
    key: &str,
) -> Result<Option<T>, ConfigError> {
    let text = match t.get(key) {
        None => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Integer(i)) => i.to_string(),
        Some(other) => {
            return Err(invalid(
                key,
                format!("expected a string, got {}", other.type_str()),
            ));
        }
    };
    text.parse().map(Some).map_err(|e| match e {
        KafkaError::Config(reason) => invalid(key, reason),
        other => invalid(key, other.to_string()),
    })
}

/// Sizes: a number of bytes, or a string with a unit: `64KiB`, `256MiB`, `1GiB`, `500kB`, `10MB`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(super) fn get_size(t: &Table, key: &str) -> Result<Option<u64>, ConfigError> {
    match t.get(key) {
        Some(Value::String(s)) => parse_size(s)
            .map(Some)
            .ok_or_else(|| invalid(key, format!("'{s}' is not a size (e.g. 256MiB)"))),
        _ => get_u64(t, key),
    }
}

pub(super) fn get_list(t: &Table, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        )),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| invalid(key, "expected a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(invalid(
            key,
            format!("expected a list, got {}", other.type_str()),
        )),
    }
}

pub(super) fn parse_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|_| invalid(key, format!("'{s}' is not an address like 127.0.0.1:9464")))
}

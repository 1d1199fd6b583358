//! Reading the registry's answers: error answers to typed errors that keep the registry's code and
//! message, and the fields of success answers.
//!
//! Must not make requests.

use std::sync::Arc;

use serde_json::Value;

use super::super::{RegistryError, SubjectSchema};

/// Turn an error answer into a typed error that keeps the registry's code and message.
pub fn error_from_response(status: u16, body: &str) -> RegistryError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    match parsed {
        Some(Value::Object(map)) if map.get("error_code").and_then(Value::as_i64).is_some() => {
            let code = map
                .get("error_code")
                .and_then(Value::as_i64)
                .unwrap_or(i64::from(status));
            let message = match map.get("message") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            RegistryError::Api {
                status,
                code,
                message,
            }
        }
        Some(Value::String(s)) => RegistryError::Api {
            status,
            code: i64::from(status),
            message: s,
        },
        _ => {
            let message: String = body.chars().take(512).collect();
            RegistryError::Api {
                status,
                code: i64::from(status),
                message,
            }
        }
    }
}

pub(super) fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, RegistryError> {
    v.get(name).ok_or_else(|| {
        RegistryError::Protocol(format!(
            "answer has no '{name}': {}",
            truncate(&v.to_string())
        ))
    })
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

pub(super) fn as_u32(v: &Value, name: &str) -> Result<u32, RegistryError> {
    field(v, name)?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| RegistryError::Protocol(format!("'{name}' is not an id")))
}

pub(super) fn as_i32(v: &Value, name: &str) -> Result<i32, RegistryError> {
    field(v, name)?
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| RegistryError::Protocol(format!("'{name}' is not a version")))
}

pub(super) fn as_str<'a>(v: &'a Value, name: &str) -> Result<&'a str, RegistryError> {
    field(v, name)?
        .as_str()
        .ok_or_else(|| RegistryError::Protocol(format!("'{name}' is not a string")))
}

pub(super) fn subject_schema(v: &Value) -> Result<SubjectSchema, RegistryError> {
    Ok(SubjectSchema {
        subject: as_str(v, "subject")?.to_string(),
        version: as_i32(v, "version")?,
        id: as_u32(v, "id")?,
        schema: Arc::from(as_str(v, "schema")?),
    })
}

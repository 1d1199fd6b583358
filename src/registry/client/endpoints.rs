//! The registry's REST endpoints: register, lookup, versions, ids, subjects, config, compatibility and
//! deletes, each one request through the transport.
//!
//! Must not decide what to cache beyond remembering what an answer taught (see the caching module).

use std::time::Instant;

use serde_json::{Value, json};

use super::response::{as_str, as_u32, field, subject_schema};
use super::{CompatibilityResult, RegistryClient};
use crate::registry::{RegistryError, SubjectSchema};

/// Percent-encode one path segment (subjects may hold any character).
pub(super) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryClient {
    fn schema_body(schema: &str) -> Value {
        json!({"schema": schema})
    }

    /// `POST /subjects/{s}/versions`: register (or find) `schema` under `subject`; its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let v = self.call(
            "POST",
            &format!("/subjects/{}/versions", enc(subject)),
            Some(&Self::schema_body(schema)),
        )?;
        // Not cached here: the caches keep the registry's own text, learnt from lookup/latest/id.
        as_u32(&v, "id")
    }

    /// `POST /subjects/{s}`: the version and id `schema` has under `subject` (40403 if none).
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<SubjectSchema, RegistryError> {
        let v = self.call(
            "POST",
            &format!("/subjects/{}", enc(subject)),
            Some(&Self::schema_body(schema)),
        )?;
        let entry = subject_schema(&v)?;
        self.remember_id(entry.id, &entry.schema)?;
        Ok(entry)
    }

    /// `GET /subjects/{s}/versions/latest`, always over HTTP; refreshes the caches.
    pub fn fetch_latest(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        let v = self.call(
            "GET",
            &format!("/subjects/{}/versions/latest", enc(subject)),
            None,
        )?;
        let entry = subject_schema(&v)?;
        if let Some(cache) = &self.cache {
            cache.store_subject(&entry)?;
        }
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.id, entry.schema.clone());
        self.remember_latest(subject, &entry, Instant::now());
        Ok(entry)
    }

    /// `GET /subjects/{s}/versions/{n}`.
    pub fn version(&self, subject: &str, version: i32) -> Result<SubjectSchema, RegistryError> {
        let v = self.call(
            "GET",
            &format!("/subjects/{}/versions/{version}", enc(subject)),
            None,
        )?;
        let entry = subject_schema(&v)?;
        self.remember_id(entry.id, &entry.schema)?;
        Ok(entry)
    }

    /// `GET /subjects`.
    pub fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        serde_json::from_value(self.call("GET", "/subjects", None)?)
            .map_err(|e| RegistryError::Protocol(e.to_string()))
    }

    /// `GET /subjects/{s}/versions`.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>, RegistryError> {
        serde_json::from_value(self.call(
            "GET",
            &format!("/subjects/{}/versions", enc(subject)),
            None,
        )?)
        .map_err(|e| RegistryError::Protocol(e.to_string()))
    }

    /// `GET /config` (no subject) or `GET /config/{s}`: the compatibility level. A subject with no
    /// level of its own fails with 40408 unless `default_to_global`.
    pub fn get_config(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<String, RegistryError> {
        let path = match subject {
            None => "/config".to_string(),
            Some(s) if default_to_global => format!("/config/{}?defaultToGlobal=true", enc(s)),
            Some(s) => format!("/config/{}", enc(s)),
        };
        Ok(as_str(&self.call("GET", &path, None)?, "compatibilityLevel")?.to_string())
    }

    /// `PUT /config` or `PUT /config/{s}` with `{"compatibility": level}`; the level set.
    pub fn put_config(&self, subject: Option<&str>, level: &str) -> Result<String, RegistryError> {
        let path = subject.map_or_else(|| "/config".to_string(), |s| format!("/config/{}", enc(s)));
        Ok(as_str(
            &self.call("PUT", &path, Some(&json!({"compatibility": level})))?,
            "compatibility",
        )?
        .to_string())
    }

    /// `POST /compatibility/subjects/{s}/versions/{version}` (`version` is a number or `latest`).
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: &str,
        schema: &str,
    ) -> Result<CompatibilityResult, RegistryError> {
        let path = format!(
            "/compatibility/subjects/{}/versions/{}",
            enc(subject),
            enc(version)
        );
        let v = self.call("POST", &path, Some(&Self::schema_body(schema)))?;
        let is_compatible = field(&v, "is_compatible")?
            .as_bool()
            .ok_or_else(|| RegistryError::Protocol("is_compatible".into()))?;
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CompatibilityResult {
            is_compatible,
            messages,
        })
    }

    /// `DELETE /subjects/{s}/versions/{n}[?permanent=true]`; the version deleted.
    pub fn delete_version(
        &self,
        subject: &str,
        version: i32,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let q = if permanent { "?permanent=true" } else { "" };
        let v = self.call(
            "DELETE",
            &format!("/subjects/{}/versions/{version}{q}", enc(subject)),
            None,
        )?;
        self.forget_latest(subject);
        v.as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| RegistryError::Protocol(format!("not a version: {v}")))
    }

    /// `DELETE /subjects/{s}[?permanent=true]`; the versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let q = if permanent { "?permanent=true" } else { "" };
        let v = self.call("DELETE", &format!("/subjects/{}{q}", enc(subject)), None)?;
        self.forget_latest(subject);
        serde_json::from_value(v).map_err(|e| RegistryError::Protocol(e.to_string()))
    }
}

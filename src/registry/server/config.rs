//! Config endpoints: the global and per-subject compatibility level (`/config`, `/config/{subject}`).
//!
//! Must not check schemas (that is the compatibility module).

use serde_json::json;

use super::body::{body_field, parse_body};
use super::reply::{ApiError, Reply, api, subject_not_found};
use super::store::{RegistryState, Subject};
use crate::schema::Compatibility;

impl RegistryState {
    pub(super) fn get_config(&self, s: &str, default_to_global: bool) -> Result<Reply, ApiError> {
        let level = match self.subject(s).and_then(|x| x.compat) {
            Some(l) => l,
            None if default_to_global => self.global,
            None => {
                return Err(api(
                    40408,
                    format!("Subject '{s}' does not have subject-level compatibility configured"),
                ));
            }
        };
        Ok(Reply::json(&json!({"compatibilityLevel": level.as_str()})))
    }

    pub(super) fn put_config(&mut self, s: Option<&str>, body: &[u8]) -> Result<Reply, Reply> {
        let body = parse_body(body)?;
        let raw = body_field(&body, "compatibility")?;
        let level = Compatibility::parse(raw).ok_or_else(|| {
            Reply::error(
                42203,
                "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
            )
        })?;
        match s {
            None => self.global = level,
            Some(s) => match self.subject_mut(s) {
                Some(sub) => sub.compat = Some(level),
                None => self.subjects.push(Subject {
                    name: s.to_string(),
                    versions: Vec::new(),
                    compat: Some(level),
                }),
            },
        }
        Ok(Reply::json(&json!({"compatibility": level.as_str()})))
    }

    pub(super) fn delete_config(&mut self, s: &str) -> Result<Reply, ApiError> {
        let sub = self.subject_mut(s).ok_or_else(|| subject_not_found(s))?;
        let old = sub.compat.take().ok_or_else(|| {
            api(
                40408,
                format!("Subject '{s}' does not have subject-level compatibility configured"),
            )
        })?;
        Ok(Reply::json(&json!({"compatibilityLevel": old.as_str()})))
    }
}

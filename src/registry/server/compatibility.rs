//! Compatibility: the level that applies to a subject, the check a register must pass (409 when
//! incompatible), and the `/compatibility` endpoint.
//!
//! Must not change the store.

use serde_json::json;

use super::body::{parse_body, parse_schema};
use super::reply::{ApiError, Reply, api, version_not_found};
use super::store::{RegistryState, Subject, Version, parse_version, version_number};
use crate::schema::{Compatibility, ParsedSchema};

impl RegistryState {
    /// What registering `parsed` under subject `s` must pass: its level's check against the live
    /// versions (all of them when transitive, else the latest); 409 with the messages when it fails.
    pub(super) fn check_register(
        &self,
        s: &Subject,
        parsed: &ParsedSchema,
    ) -> Result<(), ApiError> {
        let level = self.level(Some(s));
        let live: Vec<&Version> = s.live().collect();
        let against: Vec<&Version> = if level.transitive() {
            live
        } else {
            live.last().copied().into_iter().collect()
        };
        let mut messages = Vec::new();
        for v in against {
            if let Some(old) = self.parsed_of(v.id) {
                messages.extend(level.check(parsed, old));
            }
        }
        if !messages.is_empty() {
            return Err(api(
                409,
                format!(
                    "Incompatible schema, compatibility_mode={}. Incompatibilities: {}",
                    level.as_str(),
                    messages.join(", ")
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn level(&self, subject: Option<&Subject>) -> Compatibility {
        subject.and_then(|s| s.compat).unwrap_or(self.global)
    }

    pub(super) fn compatibility(
        &self,
        s: &str,
        v: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, Reply> {
        let vr = v.map(parse_version).transpose().map_err(Reply::from)?;
        let body = parse_body(body)?;
        let parsed = parse_schema(&body)?;
        let sub = self.visible_subject(s, false).map_err(Reply::from)?;
        let level = self.level(Some(sub));
        let against: Vec<&Version> = match vr {
            Some(vr) => vec![
                Self::find_version(sub, vr, false)
                    .ok_or_else(|| Reply::from(version_not_found(i64::from(version_number(vr)))))?,
            ],
            None => sub.live().collect(),
        };
        let mut messages = Vec::new();
        for v in against {
            if let Some(old) = self.parsed_of(v.id) {
                messages.extend(level.check(&parsed, old));
            }
        }
        Ok(if messages.is_empty() {
            Reply::ok("{\"is_compatible\":true}".into())
        } else {
            Reply::ok(format!(
                "{{\"is_compatible\":false,\"messages\":{}}}",
                json!(messages)
            ))
        })
    }
}

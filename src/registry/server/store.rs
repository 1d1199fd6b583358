//! The store: schemas by global id (the same schema by parsed form gets the same id under any subject),
//! subjects and their versions, soft and permanent deletes, `?deleted=true`.
//!
//! Must not parse HTTP; it answers with [`Reply`] values for the routes to send.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::body::{parse_body, parse_schema};
use super::reply::{ApiError, Reply, api, schema_not_found, subject_not_found, version_not_found};
use crate::schema::{Compatibility, ParsedSchema};

pub(super) struct Stored {
    pub(super) text: String,
}

#[derive(Debug, Clone)]
pub(super) struct Version {
    pub(super) version: i32,
    pub(super) id: u32,
    pub(super) deleted: bool,
}

pub(super) struct Subject {
    pub(super) name: String,
    pub(super) versions: Vec<Version>,
    pub(super) compat: Option<Compatibility>,
}

impl Subject {
    pub(super) fn live(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(|v| !v.deleted)
    }
    pub(super) fn visible(&self, deleted: bool) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(move |v| deleted || !v.deleted)
    }
}

/// A version in a request path: `latest` (or `-1`) or a number in `[1, 2^31-1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VersionRef {
    Latest,
    Number(i32),
}

pub(super) fn parse_version(s: &str) -> Result<VersionRef, ApiError> {
    if s == "latest" || s == "-1" {
        return Ok(VersionRef::Latest);
    }
    match s.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(VersionRef::Number(n)),
        _ => Err(api(
            42202,
            format!(
                "The specified version '{s}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

/// The registry's state: schemas by global id, subjects in creation order, config.
pub struct RegistryState {
    schemas: Vec<Stored>,
    parsed: Vec<ParsedSchema>,
    by_identity: HashMap<String, u32>,
    pub(super) subjects: Vec<Subject>,
    pub(super) global: Compatibility,
}

impl Default for RegistryState {
    fn default() -> Self {
        RegistryState {
            schemas: Vec::new(),
            parsed: Vec::new(),
            by_identity: HashMap::new(),
            subjects: Vec::new(),
            global: Compatibility::Backward,
        }
    }
}

pub(super) fn subject_body(subject: &str, v: &Version, schema: &str) -> String {
    format!(
        "{{\"subject\":{},\"version\":{},\"id\":{},\"schema\":{}}}",
        Value::from(subject),
        v.version,
        v.id,
        Value::from(schema)
    )
}

impl RegistryState {
    pub(super) fn subject(&self, name: &str) -> Option<&Subject> {
        self.subjects.iter().find(|s| s.name == name)
    }

    pub(super) fn subject_mut(&mut self, name: &str) -> Option<&mut Subject> {
        self.subjects.iter_mut().find(|s| s.name == name)
    }

    pub(super) fn parsed_of(&self, id: u32) -> Option<&ParsedSchema> {
        self.parsed.get((id as usize).checked_sub(1)?)
    }

    pub(super) fn schema_text(&self, id: u32) -> Option<&str> {
        self.schemas
            .get((id as usize).checked_sub(1)?)
            .map(|s| s.text.as_str())
    }

    /// Register `text` under `subject` (what `POST /subjects/{s}/versions` does); the global id.
    pub fn register(&mut self, subject: &str, text: &str) -> Result<u32, ApiError> {
        let parsed = ParsedSchema::parse(text).map_err(|e| {
            api(
                42201,
                format!("Invalid AVRO schema. Error: {}", e.registry_message()),
            )
        })?;
        self.register_parsed(subject, parsed)
    }

    pub(super) fn register_parsed(
        &mut self,
        subject: &str,
        parsed: ParsedSchema,
    ) -> Result<u32, ApiError> {
        let existing = self.subject(subject);
        if let Some(s) = existing {
            for v in s.live() {
                if self.parsed_of(v.id).is_some_and(|p| p.same_as(&parsed)) {
                    return Ok(v.id);
                }
            }
            self.check_register(s, &parsed)?;
        }
        let id = match self.by_identity.get(parsed.identity()) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.schemas.len() + 1)
                    .map_err(|_| api(50001, "id space exhausted"))?;
                self.schemas.push(Stored {
                    text: parsed.registry_text(),
                });
                self.by_identity.insert(parsed.identity().to_string(), id);
                self.parsed.push(parsed);
                id
            }
        };
        let s = match self.subjects.iter().position(|s| s.name == subject) {
            Some(i) => &mut self.subjects[i],
            None => {
                self.subjects.push(Subject {
                    name: subject.to_string(),
                    versions: Vec::new(),
                    compat: None,
                });
                let last = self.subjects.len() - 1;
                &mut self.subjects[last]
            }
        };
        let version = s.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        s.versions.push(Version {
            version,
            id,
            deleted: false,
        });
        Ok(id)
    }

    pub(super) fn list_subjects(&self, deleted: bool) -> Reply {
        let names: Vec<&str> = self
            .subjects
            .iter()
            .filter(|s| s.visible(deleted).next().is_some())
            .map(|s| s.name.as_str())
            .collect();
        Reply::json(&json!(names))
    }

    pub(super) fn visible_subject(&self, s: &str, deleted: bool) -> Result<&Subject, ApiError> {
        self.subject(s)
            .filter(|sub| sub.visible(deleted).next().is_some())
            .ok_or_else(|| subject_not_found(s))
    }

    pub(super) fn list_versions(&self, s: &str, deleted: bool) -> Result<Reply, ApiError> {
        let sub = self.visible_subject(s, deleted)?;
        let versions: Vec<i32> = sub.visible(deleted).map(|v| v.version).collect();
        Ok(Reply::json(&json!(versions)))
    }

    pub(super) fn find_version(sub: &Subject, v: VersionRef, deleted: bool) -> Option<&Version> {
        match v {
            VersionRef::Latest => sub.visible(deleted).last(),
            VersionRef::Number(n) => sub.visible(deleted).find(|x| x.version == n),
        }
    }

    pub(super) fn get_version(
        &self,
        s: &str,
        v: &str,
        deleted: bool,
    ) -> Result<(Version, String), ApiError> {
        let vr = parse_version(v)?;
        let sub = self.visible_subject(s, deleted)?;
        let found = Self::find_version(sub, vr, deleted)
            .ok_or_else(|| version_not_found(i64::from(version_number(vr))))?;
        let text = self.schema_text(found.id).ok_or_else(schema_not_found)?;
        Ok((found.clone(), text.to_string()))
    }

    pub(super) fn lookup(&self, s: &str, body: &[u8], deleted: bool) -> Result<Reply, Reply> {
        let body = parse_body(body)?;
        let parsed = parse_schema(&body)?;
        let sub = self.visible_subject(s, deleted).map_err(Reply::from)?;
        for v in sub.visible(deleted) {
            if self.parsed_of(v.id).is_some_and(|p| p.same_as(&parsed)) {
                let text = self.schema_text(v.id).unwrap_or_default();
                return Ok(Reply::ok(subject_body(s, v, text)));
            }
        }
        Err(schema_not_found().into())
    }

    pub(super) fn delete_version(
        &mut self,
        s: &str,
        v: &str,
        permanent: bool,
    ) -> Result<Reply, ApiError> {
        let vr = parse_version(v)?;
        let sub = self
            .subject_mut(s)
            .filter(|x| !x.versions.is_empty())
            .ok_or_else(|| subject_not_found(s))?;
        let idx = match vr {
            VersionRef::Latest => sub.versions.iter().rposition(|x| !x.deleted),
            VersionRef::Number(n) => sub.versions.iter().position(|x| x.version == n),
        }
        .ok_or_else(|| version_not_found(i64::from(version_number(vr))))?;
        let ver = sub.versions[idx].version;
        if !permanent {
            if sub.versions[idx].deleted {
                return Err(api(
                    40406,
                    format!(
                        "Subject '{s}' Version {ver} was soft deleted. Set permanent=true to delete permanently"
                    ),
                ));
            }
            sub.versions[idx].deleted = true;
        } else {
            if !sub.versions[idx].deleted {
                return Err(api(
                    40407,
                    format!(
                        "Subject '{s}' Version {ver} was not deleted first before being permanently deleted"
                    ),
                ));
            }
            sub.versions.remove(idx);
            if sub.versions.is_empty() {
                self.subjects.retain(|x| x.name != s);
            }
        }
        Ok(Reply::ok(ver.to_string()))
    }

    pub(super) fn delete_subject(&mut self, s: &str, permanent: bool) -> Result<Reply, ApiError> {
        let sub = self
            .subject_mut(s)
            .filter(|x| !x.versions.is_empty())
            .ok_or_else(|| subject_not_found(s))?;
        let live: Vec<i32> = sub.live().map(|v| v.version).collect();
        if !permanent {
            if live.is_empty() {
                return Err(api(
                    40404,
                    format!(
                        "Subject '{s}' was soft deleted.Set permanent=true to delete permanently"
                    ),
                ));
            }
            sub.versions.iter_mut().for_each(|v| v.deleted = true);
            return Ok(Reply::json(&json!(live)));
        }
        if !live.is_empty() {
            return Err(api(
                40405,
                format!("Subject '{s}' was not deleted first before being permanently deleted"),
            ));
        }
        let all: Vec<i32> = sub.versions.iter().map(|v| v.version).collect();
        self.subjects.retain(|x| x.name != s);
        Ok(Reply::json(&json!(all)))
    }

    pub(super) fn parse_id(id: &str) -> Result<u32, ApiError> {
        id.parse::<u32>().map_err(|_| schema_not_found())
    }

    pub(super) fn id_text(&self, id: &str) -> Result<&str, ApiError> {
        let id = Self::parse_id(id)?;
        self.schema_text(id).ok_or_else(schema_not_found)
    }

    pub(super) fn id_versions(&self, id: &str) -> Result<Reply, ApiError> {
        let id = Self::parse_id(id)?;
        self.schema_text(id).ok_or_else(schema_not_found)?;
        let mut pairs: Vec<(&str, i32)> = self
            .subjects
            .iter()
            .flat_map(|s| {
                s.live()
                    .filter(|v| v.id == id)
                    .map(move |v| (s.name.as_str(), v.version))
            })
            .collect();
        pairs.sort();
        let list: Vec<Value> = pairs
            .iter()
            .map(|(s, v)| json!({"subject": s, "version": v}))
            .collect();
        // Keys in the recorded order: subject, then version.
        let body: Vec<String> = list
            .iter()
            .map(|p| {
                format!(
                    "{{\"subject\":{},\"version\":{}}}",
                    p["subject"], p["version"]
                )
            })
            .collect();
        Ok(Reply::ok(format!("[{}]", body.join(","))))
    }
}

pub(super) fn version_number(v: VersionRef) -> i32 {
    match v {
        VersionRef::Latest => -1,
        VersionRef::Number(n) => n,
    }
}

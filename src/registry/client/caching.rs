//! Caching: an id → schema cache kept forever, a subject → latest cache with a TTL, the offline cache
//! directory read through, written through, and used as a fallback when the registry cannot be
//! reached, and auto-register mode's once-per-process registration.
//!
//! Must not make requests other than through the endpoints.

use std::sync::Arc;
use std::time::Instant;

use super::RegistryClient;
use super::response::as_str;
use crate::registry::{RegistryError, SubjectSchema};

pub(super) struct Latest {
    pub(super) entry: SubjectSchema,
    pub(super) fetched: Instant,
}

impl RegistryClient {
    pub(super) fn remember_latest(&self, subject: &str, entry: &SubjectSchema, fetched: Instant) {
        let latest = Latest {
            entry: entry.clone(),
            fetched,
        };
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(subject.to_string(), latest);
    }

    /// The subject's latest version: from memory or the cache directory while younger than the
    /// TTL, else from the registry; the cache directory when the registry is unavailable.
    pub fn latest(&self, subject: &str) -> Result<SubjectSchema, RegistryError> {
        let ttl = self.opts.latest_ttl;
        if let Some(l) = self
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
            && l.fetched.elapsed() < ttl
        {
            return Ok(l.entry.clone());
        }
        if let Some(cache) = &self.cache
            && let Some(age) = cache.subject_age(subject)
            && age < ttl
            && let Some(entry) = cache.read_subject(subject)?
        {
            let fetched = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.remember_latest(subject, &entry, fetched);
            return Ok(entry);
        }
        match self.fetch_latest(subject) {
            Ok(e) => Ok(e),
            Err(e) if e.is_unavailable() => {
                if let Some(l) = self
                    .latest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(subject)
                {
                    tracing::warn!(subject, error = %e, "registry unavailable; using the last known latest version");
                    return Ok(l.entry.clone());
                }
                if let Some(cache) = &self.cache
                    && let Some(entry) = cache.read_subject(subject)?
                {
                    tracing::warn!(subject, id = entry.id, error = %e, "registry unavailable; using the offline schema cache");
                    return Ok(entry);
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /schemas/ids/{id}` through the caches (memory, then directory: a hit makes no request).
    pub fn schema(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        if let Some(s) = self.ids.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        if let Some(cache) = &self.cache
            && let Some(s) = cache.read_id(id)?
        {
            self.ids
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, s.clone());
            return Ok(s);
        }
        let v = match self.call("GET", &format!("/schemas/ids/{id}"), None) {
            Ok(v) => v,
            Err(e) if e.code() == Some(40403) => return Err(RegistryError::SchemaNotFound { id }),
            Err(e) => return Err(e),
        };
        let text: Arc<str> = Arc::from(as_str(&v, "schema")?);
        self.remember_id(id, &text)?;
        Ok(text)
    }

    pub(super) fn remember_id(&self, id: u32, schema: &str) -> Result<(), RegistryError> {
        if let Some(cache) = &self.cache {
            cache.store_id(id, schema)?;
        }
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_insert_with(|| Arc::from(schema));
        Ok(())
    }

    pub(super) fn forget_latest(&self, subject: &str) {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(subject);
    }

    /// Auto-register mode: register the given schema (once per process), then find its version.
    pub(super) fn auto_register(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<SubjectSchema, RegistryError> {
        if let Some(e) = self
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
        {
            return Ok(e.clone());
        }
        let result = self
            .register(subject, schema)
            .and_then(|_| self.lookup(subject, schema));
        match result {
            Ok(entry) => {
                self.registered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(subject.to_string(), entry.clone());
                Ok(entry)
            }
            Err(e) if e.is_unavailable() => {
                // The cache may hold this very schema as the subject's latest.
                if let Some(cache) = &self.cache
                    && let Some(entry) = cache.read_subject(subject)?
                    && crate::schema::same_schema(&entry.schema, schema).unwrap_or(false)
                {
                    tracing::warn!(subject, id = entry.id, error = %e, "registry unavailable; using the offline schema cache");
                    return Ok(entry);
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

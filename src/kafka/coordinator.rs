//! FindCoordinator, the one request both kinds of coordinator are found with: a consumer group's
//! (key type GROUP) and a transactional producer's (key type TRANSACTION). The request for a
//! version, and the coordinator's `host:port` (or its error) from the answer.
//!
//! Must not do I/O or retry: the consumer and the transactional producer send it their own way,
//! each under its own retry rules.

use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::KafkaError;

/// Which coordinator a key names (FindCoordinator's `key_type`).
#[derive(Clone, Copy)]
pub(crate) enum KeyType {
    Group = 0,
    Transaction = 1,
}

/// FindCoordinator for `key` at `version`: one key in `coordinator_keys` from v4 (KIP-699), the
/// single `key` before.
pub(crate) fn request(key_type: KeyType, key: &str, version: i16) -> FindCoordinatorRequest {
    let req = FindCoordinatorRequest::default().with_key_type(key_type as i8);
    let key = StrBytes::from_string(key.to_string());
    if version >= 4 {
        req.with_coordinator_keys(vec![key])
    } else {
        req.with_key(key)
    }
}

/// The coordinator's `host:port` from an answer to [`request`] (its one coordinator from v4, the
/// top-level fields before), or the error it names; `context` says what was looked up.
pub(crate) fn address(resp: &FindCoordinatorResponse, context: &str) -> Result<String, KafkaError> {
    let (code, host, port) = match resp.coordinators.first() {
        Some(c) => (c.error_code, &c.host, c.port),
        None => (resp.error_code, &resp.host, resp.port),
    };
    if let Some(e) = KafkaError::from_code(code, context.to_string()) {
        return Err(e);
    }
    Ok(format!("{host}:{port}"))
}

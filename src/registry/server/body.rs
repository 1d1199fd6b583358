//! Request bodies, parsed and checked as the registry does: JSON (422 with the recorded detail), a
//! required string field, the `schema` of a register, lookup or compatibility request. Shared by
//! `routes`, `store`, `compatibility` and `config`, which import it; it imports none of them.
//!
//! Must not keep state or route requests.

use serde_json::{Value, json};

use super::reply::Reply;
use crate::schema::{ParsedSchema, python_json_position};

/// The body as JSON.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, Reply> {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str::<Value>(&text).map_err(|e| {
        let (pos, _, _) = python_json_position(&text, &e);
        let detail = json!([{"type": "json_invalid", "loc": ["body", pos], "msg": "JSON decode error", "input": {}, "ctx": {"error": "Expecting value"}}]);
        Reply::error(422, detail)
    })
}

/// A required string field of the body.
pub(super) fn body_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, Reply> {
    body.get(field).and_then(Value::as_str).ok_or_else(|| {
        let input = body.clone();
        Reply::error(422, json!([{"type": "missing", "loc": ["body", field], "msg": "Field required", "input": input}]))
    })
}

/// The `schema` of a register, lookup or compatibility request, parsed (only AVRO is taken).
pub(super) fn parse_schema(body: &Value) -> Result<ParsedSchema, Reply> {
    let text = body_field(body, "schema")?;
    let ty = body
        .get("schemaType")
        .and_then(Value::as_str)
        .unwrap_or("AVRO");
    if ty != "AVRO" {
        return Err(Reply::error(
            42201,
            format!("Invalid {ty} schema. Error: only AVRO is supported by this test registry"),
        ));
    }
    ParsedSchema::parse(text).map_err(|e| {
        Reply::error(
            42201,
            format!("Invalid AVRO schema. Error: {}", e.registry_message()),
        )
    })
}

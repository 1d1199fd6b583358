//! The registry's answers: a status with a body, and the registry's error codes and messages as recorded.
//!
//! Must not hold state or route requests.

use serde_json::Value;

/// The content type of every registry answer, errors included.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
pub(super) const PLAIN_JSON: &str = "application/json";

/// One answer: status, content type, body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub(super) fn ok(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: CONTENT_TYPE,
            body,
        }
    }
    pub(super) fn json(v: &Value) -> Reply {
        Reply::ok(v.to_string())
    }
    pub(super) fn error(code: i64, message: impl Into<Value>) -> Reply {
        let status = code
            .to_string()
            .get(..3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(500);
        // Keys in Karapace's order: error_code, then message.
        let body = format!("{{\"error_code\":{code},\"message\":{}}}", message.into());
        Reply {
            status,
            content_type: CONTENT_TYPE,
            body,
        }
    }
    pub(super) fn not_found_route() -> Reply {
        Reply {
            status: 404,
            content_type: PLAIN_JSON,
            body: "\"Not Found\"".into(),
        }
    }
    pub(super) fn method_not_allowed() -> Reply {
        Reply {
            status: 405,
            content_type: PLAIN_JSON,
            body: "{\"detail\":\"Method Not Allowed\"}".into(),
        }
    }
}

/// A registry error as the registry reports it (code and message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: i64,
    pub message: String,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::error(e.code, e.message)
    }
}

pub(super) fn api(code: i64, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: message.into(),
    }
}

pub(super) fn subject_not_found(s: &str) -> ApiError {
    api(40401, format!("Subject '{s}' not found."))
}

pub(super) fn version_not_found(v: i64) -> ApiError {
    api(40402, format!("Version {v} not found."))
}

pub(super) fn schema_not_found() -> ApiError {
    api(40403, "Schema not found")
}

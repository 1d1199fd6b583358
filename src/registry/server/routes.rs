//! Routing: from method, path and query to the store, config and compatibility operations (request
//! bodies are parsed and checked in `body`).
//!
//! Must not keep state of its own.

use serde_json::{Value, json};

use super::body::{parse_body, parse_schema};
use super::reply::Reply;
use super::store::{RegistryState, subject_body};
use crate::registry::percent::percent_decode;

impl RegistryState {
    /// Answer one request. `path` is the raw path (percent-encoded), `query` the raw query string.
    pub fn handle(&mut self, method: &str, path: &str, query: &str, body: &[u8]) -> Reply {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let q = Query::parse(query);
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let r = match (method, segs.as_slice()) {
            ("GET", []) => Ok(Reply::ok("{}".into())),
            ("GET", ["subjects"]) => Ok(self.list_subjects(q.flag("deleted"))),
            (_, ["subjects"]) => Err(Reply::method_not_allowed()),
            ("POST", ["subjects", s]) => self.lookup(s, body, q.flag("deleted")),
            ("DELETE", ["subjects", s]) => self
                .delete_subject(s, q.flag("permanent"))
                .map_err(Reply::from),
            (_, ["subjects", _]) => Err(Reply::method_not_allowed()),
            ("GET", ["subjects", s, "versions"]) => self
                .list_versions(s, q.flag("deleted"))
                .map_err(Reply::from),
            ("POST", ["subjects", s, "versions"]) => {
                let body = parse_body(body);
                body.and_then(|b| parse_schema(&b))
                    .and_then(|p| self.register_parsed(s, p).map_err(Reply::from))
                    .map(|id| Reply::ok(format!("{{\"id\":{id}}}")))
            }
            (_, ["subjects", _, "versions"]) => Err(Reply::method_not_allowed()),
            ("GET", ["subjects", s, "versions", v]) => self
                .get_version(s, v, q.flag("deleted"))
                .map(|(v, text)| Reply::ok(subject_body(s, &v, &text)))
                .map_err(Reply::from),
            ("DELETE", ["subjects", s, "versions", v]) => self
                .delete_version(s, v, q.flag("permanent"))
                .map_err(Reply::from),
            (_, ["subjects", _, "versions", _]) => Err(Reply::method_not_allowed()),
            ("GET", ["subjects", s, "versions", v, "schema"]) => self
                .get_version(s, v, q.flag("deleted"))
                .map(|(_, text)| Reply::ok(text))
                .map_err(Reply::from),
            ("GET", ["subjects", s, "versions", v, "referencedby"]) => self
                .get_version(s, v, q.flag("deleted"))
                .map(|_| Reply::ok("[]".into()))
                .map_err(Reply::from),
            ("GET", ["mode"]) => Ok(Reply::ok("{\"mode\":\"READWRITE\"}".into())),
            ("GET", ["schemas", "types"]) => {
                Ok(Reply::ok("[\"JSON\",\"AVRO\",\"PROTOBUF\"]".into()))
            }
            ("GET", ["schemas", "ids", id]) => self
                .id_text(id)
                .map(|t| Reply::ok(format!("{{\"schema\":{}}}", Value::from(t))))
                .map_err(Reply::from),
            ("GET", ["schemas", "ids", id, "schema"]) => self
                .id_text(id)
                .map(|t| Reply::ok(t.to_string()))
                .map_err(Reply::from),
            ("GET", ["schemas", "ids", id, "versions"]) => {
                self.id_versions(id).map_err(Reply::from)
            }
            ("GET", ["config"]) => Ok(Reply::json(
                &json!({"compatibilityLevel": self.global.as_str()}),
            )),
            ("PUT", ["config"]) => self.put_config(None, body),
            (_, ["config"]) => Err(Reply::method_not_allowed()),
            ("GET", ["config", s]) => self
                .get_config(s, q.flag("defaultToGlobal"))
                .map_err(Reply::from),
            ("PUT", ["config", s]) => self.put_config(Some(s), body),
            ("DELETE", ["config", s]) => self.delete_config(s).map_err(Reply::from),
            (_, ["config", _]) => Err(Reply::method_not_allowed()),
            ("POST", ["compatibility", "subjects", s, "versions", v]) => {
                self.compatibility(s, Some(v), body)
            }
            ("POST", ["compatibility", "subjects", s, "versions"]) => {
                self.compatibility(s, None, body)
            }
            _ => Err(Reply::not_found_route()),
        };
        r.unwrap_or_else(|e| e)
    }
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect(),
        )
    }
    fn flag(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
    }
}

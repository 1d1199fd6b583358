//! Helpers shared by the `registry_*` test crates: repository paths, the seed schemas, the recorded
//! exchanges, scratch directories and a raw HTTP/1.1 response reader.
#![allow(dead_code)] // each test crate uses a different part

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

use serde_json::Value;

#[allow(unused_imports)] // each test crate uses a different part
pub use avro_edge_testkit::{root, tmpdir};

/// A seed schema file from `schemas/`, as text.
pub fn schema(name: &str) -> String {
    std::fs::read_to_string(root().join("schemas").join(name)).unwrap()
}

/// The recorded exchange whose file name starts with `prefix` (e.g. `"15-"`).
pub fn fixture(prefix: &str) -> Value {
    let dir = root().join("fixtures/registry");
    let f = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap();
    serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
}

/// The response body of a recorded exchange.
pub fn fixture_body(prefix: &str) -> Value {
    fixture(prefix)["response"]["body"].clone()
}

/// One HTTP response read off a socket.
pub struct Response {
    pub status: u16,
    pub content_type: String,
    /// Every header line, lowercased.
    pub headers: String,
    pub body: String,
}

/// Read one `Content-Length` response.
pub fn read_response(r: &mut BufReader<TcpStream>) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let (mut headers, mut content_type, mut len) = (String::new(), String::new(), 0usize);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-type" => content_type = v.trim().to_string(),
                "content-length" => len = v.trim().parse().unwrap(),
                _ => {}
            }
        }
        headers.push_str(&h.to_ascii_lowercase());
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Response {
        status,
        content_type,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

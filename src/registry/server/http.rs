//! HTTP/1.1 on `std::net`: a thread per connection (at most 64 open), keep-alive, `Content-Length`
//! or chunked bodies, bounded header (64 KiB) and body (8 MiB) sizes.
//!
//! Must not know the registry's API: each request goes to [`super::RegistryState::handle`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::Shared;
use super::reply::{PLAIN_JSON, Reply};

const MAX_HEAD_BYTES: u64 = 64 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
const MAX_CONNECTIONS: usize = 64;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if shared.conns.lock().unwrap_or_else(|p| p.into_inner()).len() >= MAX_CONNECTIONS {
            tracing::warn!("test registry: too many open connections; refusing one");
            continue; // dropping the stream closes it
        }
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, clone);
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("test-registry-conn".into())
            .spawn(move || {
                serve_connection(stream, &sh);
                sh.conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            });
        if spawned.is_err() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }
}

/// One parsed request head.
pub(super) struct Head {
    method: String,
    target: String,
    content_length: usize,
    chunked: bool,
    expect_continue: bool,
    close: bool,
}

pub(super) enum HeadError {
    Closed,
    Bad(u16, &'static str),
}

pub(super) fn read_head(reader: &mut BufReader<TcpStream>) -> Result<Head, HeadError> {
    let mut limited = reader.take(MAX_HEAD_BYTES);
    let mut line = Vec::new();
    let mut read_line = |buf: &mut Vec<u8>| -> Result<(), HeadError> {
        buf.clear();
        match limited.read_until(b'\n', buf) {
            Ok(0) => Err(HeadError::Closed),
            Ok(_) if !buf.ends_with(b"\n") => {
                Err(HeadError::Bad(431, "Request Header Fields Too Large"))
            }
            Ok(_) => Ok(()),
            Err(_) => Err(HeadError::Closed),
        }
    };
    // Skip blank lines between requests.
    loop {
        read_line(&mut line)?;
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(&line).trim_end().to_string();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad(400, "Bad Request"));
    };
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        content_length: 0,
        chunked: false,
        expect_continue: false,
        close: version == "HTTP/1.0",
    };
    let mut count = 0;
    loop {
        read_line(&mut line)?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(HeadError::Bad(431, "Request Header Fields Too Large"));
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(HeadError::Bad(400, "Bad Request"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                head.content_length = value
                    .parse()
                    .map_err(|_| HeadError::Bad(400, "Bad Request"))?;
                if head.content_length > MAX_BODY_BYTES {
                    return Err(HeadError::Bad(413, "Payload Too Large"));
                }
            }
            "transfer-encoding" => {
                if value.eq_ignore_ascii_case("chunked") {
                    head.chunked = true;
                } else {
                    return Err(HeadError::Bad(501, "Not Implemented"));
                }
            }
            "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            "connection" => {
                if value.eq_ignore_ascii_case("close") {
                    head.close = true;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    head.close = false;
                }
            }
            _ => {}
        }
    }
    Ok(head)
}

/// A `Transfer-Encoding: chunked` body, at most [`MAX_BODY_BYTES`]; `Err(status)` when malformed.
pub(super) fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(1024)
            .read_until(b'\n', &mut line)
            .map_err(|_| 400u16)?;
        if n == 0 || !line.ends_with(b"\n") {
            return Err(400);
        }
        let text = String::from_utf8_lossy(&line);
        let size_hex = text.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| 400u16)?;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                line.clear();
                let n = reader
                    .by_ref()
                    .take(8 * 1024)
                    .read_until(b'\n', &mut line)
                    .map_err(|_| 400u16)?;
                if n == 0 || line.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY_BYTES {
            return Err(413);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|_| 400u16)?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).map_err(|_| 400u16)?;
        if &crlf != b"\r\n" {
            return Err(400);
        }
    }
}

pub(super) fn write_reply(
    stream: &mut TcpStream,
    reply: &Reply,
    close: bool,
) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        501 => "Not Implemented",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len(),
        if close { "close" } else { "keep-alive" }
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(reply.body.as_bytes())?;
    stream.flush()
}

/// Close after an error answer without resetting the connection: stop writing, then drain (a
/// bounded amount of) what the client is still sending, so it can read the answer.
pub(super) fn linger_close(reader: &mut BufReader<TcpStream>, writer: &TcpStream) {
    let _ = writer.shutdown(Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = std::io::copy(&mut reader.by_ref().take(1024 * 1024), &mut std::io::sink());
}

pub(super) fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let head = match read_head(&mut reader) {
            Ok(h) => h,
            Err(HeadError::Closed) => return,
            Err(HeadError::Bad(status, text)) => {
                let reply = Reply {
                    status,
                    content_type: PLAIN_JSON,
                    body: Value::from(text).to_string(),
                };
                let _ = write_reply(&mut writer, &reply, true);
                linger_close(&mut reader, &writer);
                return;
            }
        };
        if head.expect_continue && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        let body = if head.chunked {
            match read_chunked(&mut reader) {
                Ok(b) => b,
                Err(status) => {
                    let reply = Reply {
                        status,
                        content_type: PLAIN_JSON,
                        body: "\"Bad Request\"".into(),
                    };
                    let _ = write_reply(&mut writer, &reply, true);
                    linger_close(&mut reader, &writer);
                    return;
                }
            }
        } else {
            // Grows as bytes arrive: a large Content-Length alone allocates nothing.
            let mut body = Vec::new();
            match reader
                .by_ref()
                .take(head.content_length as u64)
                .read_to_end(&mut body)
            {
                Ok(n) if n == head.content_length => body,
                _ => return,
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (path, query) = head
            .target
            .split_once('?')
            .unwrap_or((head.target.as_str(), ""));
        let reply = shared.state().handle(&head.method, path, query, &body);
        shared.requests.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(method = %head.method, path, status = reply.status, "test registry request");
        if write_reply(&mut writer, &reply, head.close).is_err() || head.close {
            return;
        }
    }
}

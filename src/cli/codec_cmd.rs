//! `avro-edge encode` and `avro-edge decode`: one record in, one framed message out, and back.
//!
//! Must not hold codec logic: it parses flags, reads stdin, calls [`avro_edge::Codec`], writes stdout.
//! Bad input (the record, the message, an unknown schema id) exits 2; a schema source that cannot
//! answer exits 1.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::{CmdResult, Failure};
use avro_edge::{Codec, CodecError};
use avro_edge::{ErrorKind, Kind};
use avro_edge::{SchemaSource, open_source};

/// Where schemas come from.
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// Schema Registry base URL (repeat for fallbacks, tried in turn).
    #[arg(long = "registry", value_name = "URL")]
    pub registry: Vec<String>,
    /// Offline schema cache directory (`DIR/ids/<id>.avsc`, `DIR/subjects/<subject>.json`).
    #[arg(long = "schema-cache", value_name = "DIR")]
    pub schema_cache: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// Subject whose latest schema encodes the record (e.g. `sensor-data-value`).
    #[arg(long)]
    pub subject: String,
    #[command(flatten)]
    pub source: SourceArgs,
    /// The record as natural JSON; without it, one line is read from stdin.
    #[arg(long)]
    pub json: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Read with this schema (Avro schema resolution from the writer's schema).
    #[arg(long = "reader-schema", value_name = "FILE")]
    pub reader_schema: Option<PathBuf>,
}

fn source(a: &SourceArgs) -> Result<Arc<dyn SchemaSource>, Failure> {
    open_source(&a.registry, a.schema_cache.as_deref()).map_err(|e| Failure::runtime(&e))
}

/// Registry trouble is a runtime failure; everything about the record or message is bad input.
fn codec_failure(e: CodecError) -> Failure {
    match e {
        CodecError::Registry(_) => Failure::runtime(&e),
        e => Failure::bad_input(&e),
    }
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::other(1, Kind::Io, format!("{what}: {e}"))
}

pub fn encode(a: EncodeArgs) -> CmdResult {
    let text = match a.json {
        Some(t) => t,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| io_failure("reading stdin", e))?;
            line
        }
    };
    let record: serde_json::Value = avro_edge::parse_record(text.trim().as_bytes())
        .map_err(|e| Failure::bad_input(&CodecError::NotJson(e.to_string())))?;
    let codec = Codec::new(source(&a.source)?);
    let bytes = codec
        .encode_json(&a.subject, &record)
        .map_err(codec_failure)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|_| out.flush())
        .map_err(|e| io_failure("writing stdout", e))
}

pub fn decode(a: DecodeArgs) -> CmdResult {
    let reader = match &a.reader_schema {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            let err = CodecError::InvalidSchema(format!("{}: {e}", p.display()));
            Failure::other(2, err.kind(), err.to_string())
        })?),
        None => None,
    };
    let mut msg = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut msg)
        .map_err(|e| io_failure("reading stdin", e))?;
    let codec = Codec::new(source(&a.source)?);
    let v = match &reader {
        Some(r) => codec.decode_json_with_reader(&msg, r),
        None => codec.decode_json(&msg),
    }
    .map_err(codec_failure)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")
        .and_then(|_| out.flush())
        .map_err(|e| io_failure("writing stdout", e))
}

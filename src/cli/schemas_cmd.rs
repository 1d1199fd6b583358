//! `avro-edge schemas push|pull|serve`: register `.avsc` files, fill an offline schema cache, or
//! run the in-process test registry in the foreground.
//!
//! Must not hold registry logic: it calls [`avro_edge::registry`].

use std::io::Write;
use std::path::PathBuf;

use super::{CmdResult, Failure};
#[cfg(feature = "registry-server")]
use avro_edge::TestRegistry;
use avro_edge::avsc_files;
use avro_edge::{ErrorKind, Kind};
use avro_edge::{RegistryClient, RegistryError, client_options};

#[derive(Debug, clap::Subcommand)]
pub enum SchemasCommand {
    /// Register every `.avsc` under DIR; prints `<subject> <id>` per file.
    ///
    /// The subject comes from the file name: `sensor-data.avsc` → `sensor-data-value`, and
    /// `sensor-data-v2.avsc` is version 2 of the same subject. Files go in (name, version) order.
    Push(PushArgs),
    /// Fill an offline schema cache with the latest version of each subject (and the schemas of
    /// all its versions); prints `<subject> <version> <id>` per subject.
    Pull(PullArgs),
    /// Run a test registry (Karapace-compatible answers, in memory) in the foreground.
    /// Prints `listening on http://ADDR` once ready. Test support: only in builds with the
    /// `registry-server` feature (`cargo build --features registry-server`).
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Registry base URL (repeat, or comma-separate, for fallbacks).
    #[arg(long = "registry", required = true, env = "AVRO_EDGE_REGISTRY")]
    pub registry: Vec<String>,
    /// Directory of `.avsc` files, or one file.
    #[arg(default_value = "schemas")]
    pub dir: PathBuf,
    /// Subject suffix after the file's base name.
    #[arg(long, default_value = "value", value_parser = ["value", "key"])]
    pub subject_suffix: String,
    /// Register every file under this subject instead.
    #[arg(long)]
    pub subject: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Registry base URL (repeat, or comma-separate, for fallbacks).
    #[arg(long = "registry", required = true, env = "AVRO_EDGE_REGISTRY")]
    pub registry: Vec<String>,
    /// Subjects to fetch.
    #[arg(long = "subject", required = true, num_args = 1..)]
    pub subjects: Vec<String>,
    /// The offline cache directory to fill (created if missing).
    #[arg(long)]
    pub cache: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: String,
    /// `.avsc` files or directories to register at start, in the order given.
    #[arg(long)]
    pub preload: Vec<PathBuf>,
}

pub fn run(c: SchemasCommand) -> CmdResult {
    match c {
        SchemasCommand::Push(a) => push(a),
        SchemasCommand::Pull(a) => pull(a),
        SchemasCommand::Serve(a) => serve(a),
    }
}

/// Registry answers in 4xx (bad schema, unknown subject, incompatible) are bad input (exit 2).
fn fail(e: &RegistryError) -> Failure {
    match e {
        RegistryError::Api { status, .. } if (400..500).contains(status) => Failure::bad_input(e),
        RegistryError::SchemaNotFound { .. }
        | RegistryError::SubjectNotFound { .. }
        | RegistryError::Schema(_) => Failure::bad_input(e),
        _ => Failure::runtime(e),
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::other(1, Kind::Io, e.to_string())
}

fn push(a: PushArgs) -> CmdResult {
    let client = RegistryClient::new(client_options(&a.registry, None)).map_err(|e| fail(&e))?;
    let files = avsc_files(&a.dir).map_err(|m| Failure::other(2, Kind::SchemaFiles, m))?;
    if files.is_empty() {
        return Err(Failure::other(
            2,
            Kind::SchemaFiles,
            format!("no .avsc files in {}", a.dir.display()),
        ));
    }
    let mut out = std::io::stdout().lock();
    for (default_subject, file) in files {
        let subject = match &a.subject {
            Some(s) => s.clone(),
            None => match default_subject.strip_suffix("-value") {
                Some(base) => format!("{base}-{}", a.subject_suffix),
                None => default_subject,
            },
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Failure::other(2, Kind::SchemaFiles, format!("{}: {e}", file.display()))
        })?;
        avro_edge::ParsedSchema::parse(&text)
            .map_err(|e| Failure::other(2, e.kind(), format!("{}: {e}", file.display())))?;
        let id = client.register(&subject, &text).map_err(|e| {
            let mut f = fail(&e);
            f.message = format!("{}: {}", file.display(), f.message);
            f
        })?;
        tracing::info!(subject = %subject, id, file = %file.display(), "registered");
        writeln!(out, "{subject} {id}").map_err(io_failure)?;
    }
    Ok(())
}

fn pull(a: PullArgs) -> CmdResult {
    let client =
        RegistryClient::new(client_options(&a.registry, Some(&a.cache))).map_err(|e| fail(&e))?;
    let mut out = std::io::stdout().lock();
    for subject in &a.subjects {
        let latest = client.fetch_latest(subject).map_err(|e| fail(&e))?;
        // Older versions too, so a gateway can still decode what was written with them.
        for v in client.versions(subject).map_err(|e| fail(&e))? {
            if v != latest.version {
                client.version(subject, v).map_err(|e| fail(&e))?;
            }
        }
        writeln!(out, "{} {} {}", latest.subject, latest.version, latest.id).map_err(io_failure)?;
    }
    Ok(())
}

/// Without the `registry-server` feature the test registry is not in this binary.
#[cfg(not(feature = "registry-server"))]
fn serve(_: ServeArgs) -> CmdResult {
    Err(Failure::other(
        2,
        Kind::FeatureMissing,
        "the test registry is not built into this binary; \
         build it with `cargo build --features registry-server`",
    ))
}

#[cfg(feature = "registry-server")]
fn serve(a: ServeArgs) -> CmdResult {
    let reg = TestRegistry::bind(&a.listen)
        .map_err(|e| Failure::other(1, Kind::Listen, format!("{}: {e}", a.listen)))?;
    for p in &a.preload {
        let loaded = reg
            .preload(p)
            .map_err(|m| Failure::other(2, Kind::Preload, m))?;
        for (subject, id) in loaded {
            tracing::info!(subject = %subject, id, "preloaded");
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", reg.url()).map_err(io_failure)?;
    out.flush().map_err(io_failure)?;
    drop(out);
    loop {
        std::thread::park();
    }
}

//! The `avro-edge` command line: one file per command group, each mapping to one concept.
//!
//! Must not hold logic that a library user would also need: commands call the library.
//! Exit codes: 0 success, 1 runtime failure, 2 bad input, 3 the broker refused our SASL credentials
//! or mechanism, 4 a TLS certificate was refused (the broker's by us, or ours by the broker); each
//! with `error[<kind>]: <message>` on stderr. 3 and 4 do not heal by retrying: fix the settings.

use clap::{Parser, Subcommand};

use avro_edge::{ErrorKind, Kind};

pub mod codec_cmd;
pub mod forward_cmd;
pub mod kafka_cmd;
pub mod produce_input;
pub mod schemas_cmd;
pub mod security_args;

#[derive(Debug, Parser)]
#[command(
    name = "avro-edge",
    version,
    about = "Avro records from the edge straight to Kafka, in pure Rust"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encode one natural-JSON record into a Confluent-framed Avro message on stdout.
    Encode(codec_cmd::EncodeArgs),
    /// Decode one Confluent-framed message from stdin into one line of natural JSON.
    Decode(codec_cmd::DecodeArgs),
    /// Register schemas, fill an offline cache, or serve a test registry.
    #[command(subcommand)]
    Schemas(schemas_cmd::SchemasCommand),
    /// Produce NDJSON records from stdin to a topic.
    Produce(kafka_cmd::ProduceArgs),
    /// Consume and decode records from a topic, one JSON line each.
    Consume(kafka_cmd::ConsumeArgs),
    /// Forward sensor readings to Kafka through a crash-safe spool.
    Forward(forward_cmd::ForwardArgs),
    /// Inspect a spool directory.
    #[command(subcommand)]
    Spool(forward_cmd::SpoolCommand),
}

/// A command's failure: the exit code and what goes on stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    /// Bad input (exit 2), reported with the error's stable kind.
    pub fn bad_input(err: &dyn ErrorKind) -> Self {
        Failure {
            code: 2,
            kind: err.kind(),
            message: err.to_string(),
        }
    }
    /// A runtime failure (exit 1; 3 or 4 for a security refusal, see [`security_exit_code`]),
    /// reported with the error's stable kind.
    pub fn runtime(err: &dyn ErrorKind) -> Self {
        Failure {
            code: security_exit_code(err.kind()).unwrap_or(1),
            kind: err.kind(),
            message: err.to_string(),
        }
    }
    /// A failure with no library error behind it (bad flags, I/O on stdin/stdout).
    pub fn other(code: i32, kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            code,
            kind,
            message: message.into(),
        }
    }
}

pub type CmdResult = Result<(), Failure>;

/// Exit 3 for the SASL refusals, 4 for the TLS certificate refusals (see the module doc).
fn security_exit_code(kind: Kind) -> Option<i32> {
    match kind {
        Kind::AuthFailed | Kind::SaslUnknownUser | Kind::SaslMechanismRefused => Some(3),
        Kind::TlsUntrustedBroker | Kind::TlsClientCertificate => Some(4),
        _ => None,
    }
}

/// Logs go to stderr through `tracing`; `AVRO_EDGE_LOG` (or `RUST_LOG`) sets the filter, default `info`.
/// Colours only when stderr is a terminal, so log files and CI output stay plain text.
fn init_logging() {
    let filter = std::env::var("AVRO_EDGE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Parse the command line, run the command, and return the process exit code.
pub fn main() -> i32 {
    let result = match Cli::try_parse() {
        Ok(cli) => {
            init_logging();
            run(cli.command)
        }
        Err(e) => usage(e),
    };
    match result {
        Ok(()) => 0,
        Err(f) => {
            print_error(f.kind, &f.message);
            f.code
        }
    }
}

fn run(command: Command) -> CmdResult {
    match command {
        Command::Encode(a) => codec_cmd::encode(a),
        Command::Decode(a) => codec_cmd::decode(a),
        Command::Schemas(c) => schemas_cmd::run(c),
        Command::Produce(a) => kafka_cmd::produce(a),
        Command::Consume(a) => kafka_cmd::consume(a),
        Command::Forward(a) => forward_cmd::forward(a),
        Command::Spool(c) => forward_cmd::spool(c),
    }
}

/// A command line clap cannot take: `--help` and `--version` print as usual (success); anything
/// else prints clap's usage and hints, and fails with kind `usage` (exit 2), whose one
/// `error[usage]: …` line comes last.
fn usage(e: clap::Error) -> CmdResult {
    use clap::error::ErrorKind as Clap;
    if matches!(e.kind(), Clap::DisplayHelp | Clap::DisplayVersion) {
        let _ = e.print();
        return Ok(());
    }
    let text = e.render().to_string();
    let message = match text.strip_prefix("error: ") {
        Some(rest) => {
            let (message, hints) = rest.split_once('\n').unwrap_or((rest, ""));
            for line in hints.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("{line}");
            }
            message
        }
        // No error line of its own (help shown for a missing subcommand): all of it is help.
        None => {
            eprint!("{text}");
            "a command is required"
        }
    };
    Err(Failure::other(2, Kind::Usage, message))
}

/// The one place that writes `error[<kind>]: <message>` to stderr: once for a command's failure
/// (from [`main`]), and once per rejected input line for the commands that go on past one.
fn print_error(kind: Kind, message: &str) {
    eprintln!("error[{kind}]: {message}");
}

/// A rejected input line that does not stop the command: `error[<kind>]: line <n>: <message>`.
pub(crate) fn report_line(line: u64, err: &dyn ErrorKind) {
    print_error(err.kind(), &format!("line {line}: {err}"));
}

//! `avro-edge schemas push|pull|serve`.
use super::{CmdResult, Failure};

#[derive(Debug, clap::Subcommand)]
pub enum SchemasCommand {}

pub fn run(c: SchemasCommand) -> CmdResult {
    match c {}
}
#[allow(dead_code)]
fn _unused() -> Failure {
    Failure::other(1, "unavailable", "")
}

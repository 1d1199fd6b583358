//! `avro-edge forward` and `avro-edge spool status`.
use super::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub struct ForwardArgs {}
#[derive(Debug, clap::Subcommand)]
pub enum SpoolCommand {}

pub fn forward(_a: ForwardArgs) -> CmdResult {
    Err(Failure::other(1, "unavailable", "forward is not built yet"))
}
pub fn spool(c: SpoolCommand) -> CmdResult {
    match c {}
}

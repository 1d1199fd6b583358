//! `avro-edge produce` and `avro-edge consume`.
use super::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {}
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {}

pub fn produce(_a: ProduceArgs) -> CmdResult {
    Err(Failure::other(1, "unavailable", "produce is not built yet"))
}
pub fn consume(_a: ConsumeArgs) -> CmdResult {
    Err(Failure::other(1, "unavailable", "consume is not built yet"))
}

//! `avro-edge encode` and `avro-edge decode`.
use super::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub struct EncodeArgs {}
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {}

pub fn encode(_a: EncodeArgs) -> CmdResult {
    Err(Failure::other(1, "unavailable", "encode is not built yet"))
}
pub fn decode(_a: DecodeArgs) -> CmdResult {
    Err(Failure::other(1, "unavailable", "decode is not built yet"))
}

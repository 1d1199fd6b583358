//! Arbitrary bytes as a broker's answer: the response decoding path the client runs on every
//! frame (response header, then the message) for Metadata, Fetch, Produce, JoinGroup, SyncGroup,
//! FindCoordinator, ListOffsets and OffsetFetch at every version; the consumer-group subscription
//! and assignment decoders; and the consumer's record-batch reader (with the first batch's CRC
//! made right, so the fuzzer gets past the checksum into the records).
//! Nothing may panic, abort or allocate more than the input could justify (libFuzzer's malloc
//! limit catches a decoder that preallocates from a count read off the wire).
#![no_main]

use avro_edge::__test::{
    decode_assignment, decode_fetched_records, decode_response, decode_subscription,
};
use bytes::Bytes;
use kafka_protocol::messages::*;
use libfuzzer_sys::fuzz_target;

/// Decompressed-size cap for one batch, as the consumer's default order of magnitude.
const BATCH_LIMIT: usize = 4 * 1024 * 1024;

/// Set the CRC-32C of the batch at the start of `data` (bytes 17..21 cover 21..end of batch).
fn fix_first_crc(data: &mut [u8]) {
    if data.len() < 61 {
        return;
    }
    let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
    let Ok(len) = usize::try_from(len) else { return };
    let end = (12 + len).min(data.len());
    if end <= 21 {
        return;
    }
    let crc = crc32c::crc32c(&data[21..end]);
    data[17..21].copy_from_slice(&crc.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let v = i16::from(sel >> 4); // versions 0..=15: past each message's last one too
    let frame = Bytes::copy_from_slice(rest);
    match sel & 0x0f {
        0 => drop(decode_response::<MetadataRequest>(frame, v)),
        1 => drop(decode_response::<FetchRequest>(frame, v)),
        2 => drop(decode_response::<ProduceRequest>(frame, v)),
        3 => drop(decode_response::<JoinGroupRequest>(frame, v)),
        4 => drop(decode_response::<SyncGroupRequest>(frame, v)),
        5 => drop(decode_response::<FindCoordinatorRequest>(frame, v)),
        6 => drop(decode_response::<ListOffsetsRequest>(frame, v)),
        7 => drop(decode_response::<OffsetFetchRequest>(frame, v)),
        8 => drop(decode_response::<ApiVersionsRequest>(frame, v)),
        9 => drop(decode_response::<HeartbeatRequest>(frame, v)),
        10 | 11 => drop(decode_subscription(rest)),
        12 | 13 => drop(decode_assignment(rest)),
        _ => {
            let mut bytes = rest.to_vec();
            fix_first_crc(&mut bytes);
            let _ = decode_fetched_records(&Bytes::from(bytes), BATCH_LIMIT);
        }
    }
});

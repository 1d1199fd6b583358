//! Repeats of a forwarded record, told by the two headers the forwarder gives every record it sends
//! (unless `forward.headers = false`): `avro-edge-gateway` (the gateway's id) and `avro-edge-seq`
//! (the record's spool sequence number, decimal ASCII). A (gateway, sequence) pair names one
//! reading, so a consumer that does not read committed transactions only (or reads a forwarder
//! without exactly-once, which resends up to one window after a crash) can drop the repeats:
//! [`Dedupe`] (and `avro-edge consume --dedupe`).
//!
//! How a repeat is told, per gateway, in bounded memory:
//! - a window of the last [`Dedupe::DEFAULT_WINDOW`] sequence numbers below the highest one seen,
//!   one bit each: a number seen in the window is a repeat, wherever it landed (an unkeyed record
//!   sent again can land on another partition than the first time);
//! - below the window, the high-water mark per topic and partition: the forwarder writes one
//!   gateway's records to a partition in spool order, so there a number at or below that
//!   partition's mark is a repeat (a keyed record always goes to the same partition). Records of
//!   one gateway spread over partitions arrive interleaved in any order, so one mark per gateway
//!   would drop records that are merely late.
//!
//! At most [`Dedupe::DEFAULT_GATEWAYS`] gateways are tracked; the least recently seen one is
//! forgotten past that. A record without the headers is always kept.
//!
//! Must not know Kafka's client or Avro: it reads headers, and keeps or drops.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::kafka::record::RawRecord;

/// The header naming the gateway (its spool's id, or `forward.gateway_id`).
pub const GATEWAY_HEADER: &str = "avro-edge-gateway";
/// The header holding the record's spool sequence number, in decimal ASCII.
pub const SEQ_HEADER: &str = "avro-edge-seq";

/// The headers the forwarder gives the record with spool sequence number `seq`.
pub fn headers(gateway: &str, seq: u64) -> Vec<(String, Vec<u8>)> {
    vec![
        (GATEWAY_HEADER.to_string(), gateway.as_bytes().to_vec()),
        (SEQ_HEADER.to_string(), seq.to_string().into_bytes()),
    ]
}

/// The gateway and sequence number a record's headers name, if it has both (well formed).
pub fn origin(headers: &[(String, Option<Bytes>)]) -> Option<(&str, u64)> {
    let value = |name: &str| {
        (headers.iter().rev())
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    };
    let gateway = std::str::from_utf8(value(GATEWAY_HEADER)?).ok()?;
    let seq = std::str::from_utf8(value(SEQ_HEADER)?).ok()?.parse().ok()?;
    Some((gateway, seq))
}

/// The sequence numbers of one gateway seen lately: a ring of bits for `[top - window, top)`.
struct Seen {
    /// One above the highest number seen.
    top: u64,
    bits: Vec<u64>,
}

impl Seen {
    fn new(window: u64) -> Seen {
        Seen {
            top: 0,
            bits: vec![0; window.div_ceil(64) as usize],
        }
    }

    fn window(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn in_window(&self, seq: u64) -> bool {
        seq < self.top && seq >= self.top.saturating_sub(self.window())
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let i = seq % self.window();
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn get(&self, seq: u64) -> bool {
        let (w, b) = self.slot(seq);
        self.bits.get(w).is_some_and(|x| x & b != 0)
    }

    /// Mark `seq` seen, moving the window up when it is above it (a number below the window has
    /// no bit: its slot belongs to a number in the window).
    fn set(&mut self, seq: u64) {
        if seq < self.top && !self.in_window(seq) {
            return;
        }
        if seq >= self.top {
            if seq - self.top >= self.window() {
                self.bits.iter_mut().for_each(|w| *w = 0);
            } else {
                for s in self.top..seq {
                    let (w, b) = self.slot(s);
                    if let Some(x) = self.bits.get_mut(w) {
                        *x &= !b;
                    }
                }
            }
            self.top = seq + 1;
        }
        let (w, b) = self.slot(seq);
        if let Some(x) = self.bits.get_mut(w) {
            *x |= b;
        }
    }
}

/// What is known of one gateway.
struct Gateway {
    seen: Seen,
    /// The highest number seen per topic and partition.
    marks: HashMap<Arc<str>, HashMap<i32, u64>>,
    last_used: u64,
}

/// Drops repeats of forwarded records (see the module doc). Feed it every record in the order
/// consumed.
///
/// ```
/// use avro_edge::dedupe::{Dedupe, headers};
/// let mut d = Dedupe::new();
/// let h = |seq| headers("gw-1", seq).into_iter().map(|(k, v)| (k, Some(v.into()))).collect::<Vec<_>>();
/// assert!(d.first("readings", 0, &h(7)));
/// assert!(d.first("readings", 1, &h(8)));
/// assert!(!d.first("readings", 2, &h(7)), "sent again after a crash, landed elsewhere");
/// assert_eq!(d.dropped(), 1);
/// ```
pub struct Dedupe {
    gateways: HashMap<String, Gateway>,
    window: u64,
    max_gateways: usize,
    clock: u64,
    dropped: u64,
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe::new()
    }
}

impl Dedupe {
    /// Sequence numbers per gateway below its highest one that are told apart exactly (1 KiB).
    pub const DEFAULT_WINDOW: u64 = 8192;
    /// Gateways tracked at once.
    pub const DEFAULT_GATEWAYS: usize = 4096;

    /// With the default window and gateway limit.
    pub fn new() -> Dedupe {
        Dedupe::with_limits(Self::DEFAULT_WINDOW, Self::DEFAULT_GATEWAYS)
    }

    /// A window of `window` sequence numbers per gateway (rounded up to 64), at most `gateways`
    /// gateways (each at least 1).
    pub fn with_limits(window: u64, gateways: usize) -> Dedupe {
        Dedupe {
            gateways: HashMap::new(),
            window: window.max(64),
            max_gateways: gateways.max(1),
            clock: 0,
            dropped: 0,
        }
    }

    /// Whether this record (on `topic`/`partition`, with `headers`) is the first of its gateway
    /// and sequence number seen; `false` for a repeat. A record without the headers is kept.
    pub fn first(
        &mut self,
        topic: &str,
        partition: i32,
        headers: &[(String, Option<Bytes>)],
    ) -> bool {
        let Some((gateway, seq)) = origin(headers) else {
            return true;
        };
        let first = self.check(gateway, topic, partition, seq);
        if !first {
            self.dropped += 1;
        }
        first
    }

    /// [`Dedupe::first`] for a consumed record.
    pub fn keep(&mut self, r: &RawRecord) -> bool {
        self.first(&r.topic, r.partition, &r.headers)
    }

    /// Repeats dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn check(&mut self, gateway: &str, topic: &str, partition: i32, seq: u64) -> bool {
        self.clock += 1;
        if !self.gateways.contains_key(gateway) {
            self.make_room();
            let g = Gateway {
                seen: Seen::new(self.window),
                marks: HashMap::new(),
                last_used: 0,
            };
            self.gateways.insert(gateway.to_string(), g);
        }
        let Some(g) = self.gateways.get_mut(gateway) else {
            return true;
        };
        g.last_used = self.clock;
        let mark = (g.marks.get(topic)).and_then(|m| m.get(&partition).copied());
        let repeat = if g.seen.in_window(seq) {
            g.seen.get(seq)
        } else {
            seq < g.seen.top && mark.is_some_and(|m| seq <= m)
        };
        if repeat {
            return false;
        }
        g.seen.set(seq);
        if mark.is_none_or(|m| m < seq) {
            match g.marks.get_mut(topic) {
                Some(m) => {
                    m.insert(partition, seq);
                }
                None => {
                    g.marks
                        .insert(Arc::from(topic), HashMap::from([(partition, seq)]));
                }
            }
        }
        true
    }

    /// Forget the least recently seen gateway when the limit is reached.
    fn make_room(&mut self) {
        if self.gateways.len() < self.max_gateways {
            return;
        }
        let oldest = (self.gateways.iter())
            .min_by_key(|(_, g)| g.last_used)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.gateways.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(gateway: &str, seq: u64) -> Vec<(String, Option<Bytes>)> {
        headers(gateway, seq)
            .into_iter()
            .map(|(k, v)| (k, Some(Bytes::from(v))))
            .collect()
    }

    #[test]
    fn headers_round_trip_and_bad_ones_are_kept() {
        assert_eq!(origin(&h("gw", 42)), Some(("gw", 42)));
        let mut d = Dedupe::new();
        let no_seq = vec![(GATEWAY_HEADER.to_string(), Some(Bytes::from("gw")))];
        let bad_seq = vec![
            (GATEWAY_HEADER.to_string(), Some(Bytes::from("gw"))),
            (SEQ_HEADER.to_string(), Some(Bytes::from("x1"))),
        ];
        for _ in 0..2 {
            assert!(d.first("t", 0, &[]));
            assert!(d.first("t", 0, &no_seq));
            assert!(d.first("t", 0, &bad_seq));
        }
        assert_eq!(d.dropped(), 0);
    }

    /// A crash resends the last window; the resent records land on other partitions (unkeyed)
    /// or the same (keyed), interleaved with records of other gateways: each dropped once.
    #[test]
    fn a_resent_window_is_dropped_wherever_it_lands() {
        let mut d = Dedupe::new();
        let mut kept = Vec::new();
        // Gateway a: 0..1000 over 3 partitions; gateway b interleaved on partition 0.
        for s in 0..1000u64 {
            if d.first("t", (s % 3) as i32, &h("a", s)) {
                kept.push(("a", s));
            }
            if d.first("t", 0, &h("b", s)) {
                kept.push(("b", s));
            }
        }
        // a's resend of 700..1000 (unkeyed: now on partition (s + 1) % 3), then new records.
        for s in 700..1100u64 {
            if d.first("t", ((s + 1) % 3) as i32, &h("a", s)) {
                kept.push(("a", s));
            }
        }
        assert_eq!(d.dropped(), 300);
        assert_eq!(kept.len(), 2100);
    }

    /// Partitions read at different speeds: one gateway's records arrive far out of order across
    /// partitions, and none is mistaken for a repeat; a keyed resend far below the window is still
    /// caught by its partition's mark.
    #[test]
    fn lagging_partitions_are_not_repeats_and_old_resends_are() {
        let mut d = Dedupe::with_limits(64, 10);
        // Partition 1 is read first up to 500, then partition 0's older records.
        for s in (1..500u64).step_by(2) {
            assert!(d.first("t", 1, &h("a", s)), "{s}");
        }
        for s in (0..500u64).step_by(2) {
            assert!(d.first("t", 0, &h("a", s)), "{s} is late, not a repeat");
        }
        // A keyed resend of partition 1's 101..199, far below the 64-number window.
        for s in (101..200u64).step_by(2) {
            assert!(!d.first("t", 1, &h("a", s)), "{s} again");
        }
        assert_eq!(d.dropped(), 50);
    }

    #[test]
    fn gateways_are_bounded_and_the_least_recent_is_forgotten() {
        let mut d = Dedupe::with_limits(64, 2);
        assert!(d.first("t", 0, &h("a", 1)));
        assert!(d.first("t", 0, &h("b", 1)));
        assert!(!d.first("t", 0, &h("a", 1)), "a is remembered");
        assert!(d.first("t", 0, &h("c", 1)), "c evicts b, the least recent");
        assert_eq!(d.gateways.len(), 2);
        assert!(d.first("t", 0, &h("b", 1)), "b was forgotten");
        assert!(!d.first("t", 0, &h("c", 1)));
    }
}

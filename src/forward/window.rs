//! The sender's window: the records read from the spool and not yet released from it, each with its own
//! acknowledgement. A record is settled when the sink acknowledged it or it was dead-lettered; the spool's
//! acknowledged cursor moves only over the settled prefix ([`Window::release`]), while records settled out
//! of order are remembered here so that a retry sends only what is still pending.
//!
//! Must not reorder: the pending records of a topic are handed out in spool order, and a record stays in
//! the window (and in the spool) until everything before it is settled. Knows nothing of the sink or the
//! broker.

use std::collections::VecDeque;

use super::OutRecord;
use crate::spool::SpoolRecord;

/// One record of the window: its place in the spool (`rec`, its key and value moved out) and, while it is
/// pending, the message to send.
struct Slot {
    rec: SpoolRecord,
    out: Option<OutRecord>,
    /// Send it in a call of its own (see the module doc).
    alone: bool,
}

/// Records read from the spool, in spool order, until released.
#[derive(Default)]
pub(super) struct Window {
    slots: VecDeque<Slot>,
}

/// The pending records of one topic, taken out of the window for a send: their places and messages.
pub(super) struct Taken {
    pub topic: String,
    pub at: Vec<usize>,
    pub records: Vec<OutRecord>,
}

impl Window {
    /// A window over a batch just read from the spool: every record pending; with `gateway`, each
    /// record carries the gateway and its sequence number as headers ([`crate::dedupe::headers`]).
    pub fn new(batch: Vec<SpoolRecord>, gateway: Option<&str>) -> Window {
        let slots = batch
            .into_iter()
            .map(|mut rec| {
                let out = OutRecord {
                    key: rec.key.take(),
                    value: std::mem::take(&mut rec.value),
                    headers: gateway.map_or_else(Vec::new, |g| crate::dedupe::headers(g, rec.seq)),
                };
                Slot {
                    rec,
                    out: Some(out),
                    alone: false,
                }
            })
            .collect();
        Window { slots }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Records in the window, settled or not.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Records not yet settled.
    pub fn pending(&self) -> usize {
        self.slots.iter().filter(|s| s.out.is_some()).count()
    }

    /// The topics with pending records, in the order of their first pending record.
    pub fn topics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.slots.iter().filter(|s| s.out.is_some()) {
            if !out.contains(&s.rec.topic) {
                out.push(s.rec.topic.clone());
            }
        }
        out
    }

    /// Take every pending record of `topic`, in spool order. A record that is not given back with
    /// [`Window::put_back`] is settled (acknowledged or dead-lettered).
    pub fn take(&mut self, topic: &str) -> Taken {
        let mut at = Vec::new();
        let mut records = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.rec.topic == topic
                && let Some(out) = s.out.take()
            {
                at.push(i);
                records.push(out);
            }
        }
        Taken {
            topic: topic.to_string(),
            at,
            records,
        }
    }

    /// Whether a pending record of `topic` is to be sent alone: then every pending record of the topic
    /// is sent one per call, in spool order ([`Window::pending_of`], [`Window::take_at`]).
    pub fn one_by_one(&self, topic: &str) -> bool {
        self.slots
            .iter()
            .any(|s| s.alone && s.out.is_some() && s.rec.topic == topic)
    }

    /// The places of the pending records of `topic`, in spool order.
    pub fn pending_of(&self, topic: &str) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| {
                self.slots
                    .get(i)
                    .is_some_and(|s| s.out.is_some() && s.rec.topic == topic)
            })
            .collect()
    }

    /// Take the pending record at `i` alone.
    pub fn take_at(&mut self, i: usize) -> Taken {
        let mut t = Taken {
            topic: String::new(),
            at: Vec::new(),
            records: Vec::new(),
        };
        if let Some(s) = self.slots.get_mut(i)
            && let Some(out) = s.out.take()
        {
            t.topic = s.rec.topic.clone();
            t.at.push(i);
            t.records.push(out);
        }
        t
    }

    /// The record at `i` is pending again, to be sent in a call of its own.
    pub fn send_alone(&mut self, i: usize, out: OutRecord) {
        if let Some(s) = self.slots.get_mut(i) {
            s.out = Some(out);
            s.alone = true;
        }
    }

    /// The spool record (without key and value) at `i`, e.g. for its spool time.
    pub fn record(&self, i: usize) -> Option<&SpoolRecord> {
        self.slots.get(i).map(|s| &s.rec)
    }

    /// The record at `i` is pending again (its send failed and may succeed later).
    pub fn put_back(&mut self, i: usize, out: OutRecord) {
        if let Some(s) = self.slots.get_mut(i) {
            s.out = Some(out);
        }
    }

    /// Forget the records below sequence number `acked`: the spool released them itself (`drop_oldest`
    /// dropped their segment), so they are not sent again.
    pub fn forget_below(&mut self, acked: u64) {
        self.slots.retain(|s| s.rec.seq >= acked);
    }

    /// Remove the settled prefix and return its last record, to acknowledge the spool through; `None`
    /// when the first record is still pending. Indices from [`Window::take`] are invalid afterwards.
    pub fn release(&mut self) -> Option<SpoolRecord> {
        let mut last = None;
        while self.slots.front().is_some_and(|s| s.out.is_none()) {
            last = self.slots.pop_front().map(|s| s.rec);
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spool records are made by the spool only; read some from a real one.
    fn records(topics: &[&str]) -> Vec<SpoolRecord> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "avro-edge-window-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (spool, _) =
            crate::spool::Spool::open(&dir, crate::spool::SpoolOptions::default()).unwrap();
        for (i, t) in topics.iter().enumerate() {
            spool
                .append(t, Some(format!("k{i}").as_bytes()), &[i as u8])
                .unwrap();
        }
        let got = spool
            .read_batch(100, 1 << 20, std::time::Duration::ZERO)
            .unwrap();
        spool.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        got
    }

    #[test]
    fn out_of_order_settlements_are_kept_and_only_the_settled_prefix_is_released() {
        let mut w = Window::new(records(&["a", "b", "a", "b"]), None);
        assert_eq!(w.topics(), ["a", "b"]);
        let a = w.take("a");
        assert_eq!((a.at.as_slice(), a.records.len()), ([0, 2].as_slice(), 2));
        assert_eq!(a.records[1].value, [2u8]);
        // "a" #0 fails, "a" #2 is acknowledged: nothing can be released yet.
        let mut recs = a.records.into_iter();
        w.put_back(0, recs.next().unwrap());
        assert!(w.release().is_none());
        let b = w.take("b");
        assert_eq!(b.at, [1, 3]);
        assert_eq!(w.pending(), 1);
        assert_eq!(w.topics(), ["a"], "only the failed record is left to send");
        let again = w.take("a");
        assert_eq!(
            (again.at.as_slice(), again.records[0].value.as_slice()),
            ([0].as_slice(), [0u8].as_slice())
        );
        let last = w.release().unwrap();
        assert_eq!(last.seq, 3);
        assert!(w.is_empty());
    }

    #[test]
    fn a_record_to_send_alone_makes_its_topic_go_one_by_one() {
        let mut w = Window::new(records(&["a", "b", "a"]), None);
        let a = w.take("a");
        let mut recs = a.records.into_iter();
        w.send_alone(0, recs.next().unwrap());
        w.put_back(2, recs.next().unwrap());
        assert!(w.one_by_one("a") && !w.one_by_one("b"));
        assert_eq!(w.pending_of("a"), [0, 2]);
        let one = w.take_at(2);
        assert_eq!(
            (one.topic.as_str(), one.at.as_slice()),
            ("a", [2].as_slice())
        );
        assert_eq!(w.pending_of("a"), [0]);
        assert!(w.take_at(2).records.is_empty(), "taken already");
    }

    #[test]
    fn records_the_spool_dropped_are_forgotten() {
        let mut w = Window::new(records(&["a", "a", "a"]), Some("gw-1"));
        w.forget_below(2);
        assert_eq!(w.pending(), 1);
        let left = w.take("a");
        assert_eq!(left.records[0].value, [2u8]);
        let headers = &left.records[0].headers;
        assert_eq!(
            *headers,
            crate::dedupe::headers("gw-1", 2),
            "gateway and sequence number"
        );
    }
}

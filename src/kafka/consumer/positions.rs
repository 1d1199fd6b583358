//! The fetch position and the committed offset of every partition the consumer owns, and the
//! order they are fetched in: a partition that returned data (or an error) goes to the back of the
//! next Fetch, as Java's `SubscriptionState.movePartitionToEnd` does. The broker hands a batch
//! larger than the per-partition limit only to the first partition of an answer that has data, so
//! without the rotation a partition whose next batch is that large would wait behind busier ones
//! for as long as they stay busy.
//!
//! Must not do I/O: the consumer moves positions from what brokers answer; a late answer for a
//! partition no longer owned is ignored here.

use std::collections::BTreeMap;

use crate::kafka::group::TopicPartitions;

/// Per-partition fetch positions and committed offsets for the partitions we own.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    parts: BTreeMap<(String, i32), PartState>,
    /// Every owned partition once, in fetch order.
    order: Vec<(String, i32)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PartState {
    /// The next offset to fetch (and, once records up to it were handed out, to commit).
    position: Option<i64>,
    /// The last offset committed (or read back from the group), if any.
    committed: Option<i64>,
}

impl Positions {
    /// Own exactly `assignment`; partitions kept keep their state and their place in the fetch
    /// order (new ones go last), others are dropped.
    pub fn set_assignment(&mut self, assignment: &TopicPartitions) {
        let mut next = BTreeMap::new();
        for (t, ps) in assignment {
            for &p in ps {
                let key = (t.clone(), p);
                let st = self.parts.get(&key).copied().unwrap_or_default();
                next.insert(key, st);
            }
        }
        self.order.retain(|k| next.contains_key(k));
        let placed: std::collections::BTreeSet<&(String, i32)> = self.order.iter().collect();
        let new: Vec<(String, i32)> = (next.keys())
            .filter(|k| !placed.contains(k))
            .cloned()
            .collect();
        self.order.extend(new);
        self.parts = next;
    }

    /// The owned partitions, sorted.
    pub fn owned(&self) -> impl Iterator<Item = &(String, i32)> {
        self.parts.keys()
    }

    /// The owned partitions in the order the next Fetch asks for them.
    pub fn fetch_order(&self) -> &[(String, i32)] {
        &self.order
    }

    /// `topic`-`partition` returned data or an error: it goes to the back of the fetch order.
    pub fn move_to_end(&mut self, topic: &str, partition: i32) {
        if let Some(i) = (self.order.iter()).position(|(t, p)| *p == partition && t == topic) {
            let key = self.order.remove(i);
            self.order.push(key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Partitions that have no fetch position yet.
    pub fn missing(&self) -> Vec<(String, i32)> {
        self.parts
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts
            .get(&(topic.to_string(), partition))
            .and_then(|s| s.position)
    }

    /// Move the position (only for owned partitions: a late answer for a revoked one is ignored).
    pub fn set_position(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(s) = self.parts.get_mut(&(topic.to_string(), partition)) {
            s.position = Some(offset);
        }
    }

    /// The group's committed offset: it also becomes the position when there was none.
    pub fn set_committed(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(s) = self.parts.get_mut(&(topic.to_string(), partition)) {
            s.committed = Some(offset);
            if s.position.is_none() {
                s.position = Some(offset);
            }
        }
    }

    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts
            .get(&(topic.to_string(), partition))
            .and_then(|s| s.committed)
    }

    /// Positions that moved since the last commit.
    #[cfg(test)]
    pub fn uncommitted(&self) -> Vec<((String, i32), i64)> {
        self.uncommitted_with(|_, _| None)
    }

    /// Like [`Positions::uncommitted`], where `next(topic, partition)` may name an earlier
    /// offset to commit (the first record fetched but not handed out yet).
    pub fn uncommitted_with(
        &self,
        next: impl Fn(&str, i32) -> Option<i64>,
    ) -> Vec<((String, i32), i64)> {
        self.parts
            .iter()
            .filter_map(|((t, p), s)| {
                let at = next(t, *p).or(s.position)?;
                (s.committed != Some(at)).then(|| ((t.clone(), *p), at))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_track_assignment_commit_and_progress() {
        let mut p = Positions::default();
        let a: TopicPartitions = [("t".to_string(), vec![0, 1])].into_iter().collect();
        p.set_assignment(&a);
        assert_eq!(p.missing().len(), 2);
        p.set_committed("t", 0, 7);
        p.set_position("t", 1, 0);
        assert_eq!(p.position("t", 0), Some(7));
        assert_eq!(p.uncommitted(), vec![(("t".to_string(), 1), 0)]);
        p.set_position("t", 0, 9);
        p.set_committed("t", 1, 0);
        assert_eq!(p.uncommitted(), vec![(("t".to_string(), 0), 9)]);
        // Rebalance keeps partition 1's state, drops 0, adds 2 without a position.
        let b: TopicPartitions = [("t".to_string(), vec![1, 2])].into_iter().collect();
        p.set_assignment(&b);
        assert_eq!(p.position("t", 0), None);
        assert_eq!(p.position("t", 1), Some(0));
        assert_eq!(p.missing(), vec![("t".to_string(), 2)]);
        // Late answers for partitions we no longer own are ignored.
        p.set_position("t", 0, 100);
        assert_eq!(p.position("t", 0), None);
    }

    #[test]
    fn partitions_that_returned_data_go_to_the_back_of_the_fetch_order() {
        let key = |t: &str, p: i32| (t.to_string(), p);
        let mut p = Positions::default();
        let a: TopicPartitions = [("a".to_string(), vec![0, 1, 2])].into_iter().collect();
        p.set_assignment(&a);
        assert_eq!(p.fetch_order(), [key("a", 0), key("a", 1), key("a", 2)]);
        p.move_to_end("a", 0);
        p.move_to_end("a", 1);
        assert_eq!(p.fetch_order(), [key("a", 2), key("a", 0), key("a", 1)]);
        p.move_to_end("b", 0); // not owned: nothing moves
        assert_eq!(p.fetch_order(), [key("a", 2), key("a", 0), key("a", 1)]);
        // A new assignment keeps the order of what stays and puts what is new last.
        let b: TopicPartitions = [("a".to_string(), vec![0, 1]), ("b".to_string(), vec![0])]
            .into_iter()
            .collect();
        p.set_assignment(&b);
        assert_eq!(p.fetch_order(), [key("a", 0), key("a", 1), key("b", 0)]);
        p.set_assignment(&TopicPartitions::new());
        assert!(p.fetch_order().is_empty());
    }
}

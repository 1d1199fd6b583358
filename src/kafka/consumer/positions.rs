//! The fetch position and the committed offset of every partition the consumer owns.
//!
//! Must not do I/O: the consumer moves positions from what brokers answer; a late answer for a
//! partition no longer owned is ignored here.

use std::collections::BTreeMap;

use crate::kafka::group::TopicPartitions;

/// Per-partition fetch positions and committed offsets for the partitions we own.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    parts: BTreeMap<(String, i32), PartState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PartState {
    /// The next offset to fetch (and, once records up to it were handed out, to commit).
    position: Option<i64>,
    /// The last offset committed (or read back from the group), if any.
    committed: Option<i64>,
}

impl Positions {
    /// Own exactly `assignment`; partitions kept keep their state, others are dropped.
    pub fn set_assignment(&mut self, assignment: &TopicPartitions) {
        let mut next = BTreeMap::new();
        for (t, ps) in assignment {
            for &p in ps {
                let key = (t.clone(), p);
                let st = self.parts.get(&key).copied().unwrap_or_default();
                next.insert(key, st);
            }
        }
        self.parts = next;
    }

    pub fn owned(&self) -> impl Iterator<Item = &(String, i32)> {
        self.parts.keys()
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
}

//! Topics the consumer reads that the cluster no longer serves to it (deleted, not created yet
//! in assign mode, or refused by an ACL): their partitions stall, the other topics are read on,
//! and each is reported once (a WARN line with the error's kind, and
//! [`Consumer::unavailable_topics`](super::Consumer::unavailable_topics)) when it goes and once
//! when it is back, not at every poll. A stalled topic is looked up again every
//! [`LOOK_AGAIN`].
//!
//! Must not do I/O: the fetch path asks [`StalledTopics::waiting`] whether to look a topic up
//! and reports what the lookup found.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use crate::kafka::KafkaError;

/// How often a stalled topic is looked up again.
pub(super) const LOOK_AGAIN: Duration = Duration::from_secs(3);

/// The stalled topics: why, and when to look again.
#[derive(Debug, Default)]
pub(super) struct StalledTopics {
    topics: BTreeMap<String, (KafkaError, Instant)>,
}

impl StalledTopics {
    /// Whether `topic` is stalled and not due for another lookup.
    pub(super) fn waiting(&self, topic: &str) -> bool {
        (self.topics.get(topic)).is_some_and(|(_, at)| *at > Instant::now())
    }

    /// Whether `topic` is stalled (due for a lookup or not).
    pub(super) fn contains(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// The lookup of `topic` failed with `err`, an error of that topic alone: stall it until
    /// the next lookup (logged when it was not stalled already).
    pub(super) fn stall(&mut self, topic: &str, err: KafkaError) {
        let again = Instant::now() + LOOK_AGAIN;
        if let Some(entry) = self.topics.get_mut(topic) {
            *entry = (err, again);
            return;
        }
        tracing::warn!(
            topic,
            kind = err.kind().as_str(),
            error = %err,
            "topic unavailable; its partitions wait, the other topics are read on"
        );
        self.topics.insert(topic.to_string(), (err, again));
    }

    /// The lookup found `topic`: read it again (logged when it was stalled).
    pub(super) fn found(&mut self, topic: &str) {
        if self.topics.remove(topic).is_some() {
            tracing::info!(topic, "topic available again; reading it");
        }
    }

    /// Forget topics the consumer no longer reads (after a rebalance).
    pub(super) fn retain(&mut self, reads: impl Fn(&str) -> bool) {
        self.topics.retain(|t, _| reads(t));
    }

    /// The stalled topics and why.
    pub(super) fn list(&self) -> Vec<(String, KafkaError)> {
        (self.topics.iter())
            .map(|(t, (e, _))| (t.clone(), e.clone()))
            .collect()
    }
}

/// Whether an error looking up one topic's metadata concerns that topic alone (it does not
/// exist, or the broker refuses it), so the topic stalls and the others are read on; a
/// connection or cluster-wide failure is the caller's to retry.
pub(super) fn topic_alone(err: &KafkaError) -> bool {
    matches!(err, KafkaError::UnknownTopic(_))
        || matches!(err, KafkaError::Kafka { .. } if !err.is_retriable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_topic_waits_is_listed_once_and_comes_back() {
        let mut s = StalledTopics::default();
        assert!(!s.waiting("gone") && !s.contains("gone"));
        s.stall("gone", KafkaError::UnknownTopic("gone".into()));
        s.stall("gone", KafkaError::UnknownTopic("gone".into()));
        assert!(s.waiting("gone") && s.contains("gone"));
        let listed = s.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "gone");
        assert_eq!(listed[0].1.kind().as_str(), "unknown-topic");
        s.found("gone");
        assert!(!s.contains("gone") && s.list().is_empty());
        s.stall("other", KafkaError::UnknownTopic("other".into()));
        s.retain(|t| t != "other");
        assert!(s.list().is_empty());
        assert!(topic_alone(&KafkaError::UnknownTopic("t".into())));
        assert!(!topic_alone(&KafkaError::Timeout {
            what: "metadata".into(),
            after: Duration::from_secs(1)
        }));
    }
}

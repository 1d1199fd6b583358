//! Create a topic with topic-level configs (`max.message.bytes`, `message.timestamp.after.max.ms`, ...)
//! for tests that need the broker to refuse some records: a raw CreateTopics request.
//!
//! Must not go through avro-edge's producer or its auto-creation (those create topics without configs).

use avro_edge::__test::{self as kafka, Client, ClientConfig, Target};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

/// Create `topic` on `bootstrap` (`host:port`, comma-separated) with `partitions` partitions, replication factor 1 and the topic
/// configs `configs`; an error (the topic exists already, a config is refused) is returned as text.
pub fn create_topic_with_configs(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let client = Client::new(ClientConfig {
        bootstrap: bootstrap.split(',').map(str::to_string).collect(),
        ..ClientConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(configs),
        ])
        .with_timeout_ms(30_000);
    let resp = kafka::block_on(client.request(&Target::Any, &req)).map_err(|e| e.to_string())?;
    for t in &resp.topics {
        if t.error_code != 0 {
            return Err(format!(
                "CreateTopics {topic}: error {} {}",
                t.error_code,
                t.error_message.as_deref().unwrap_or("")
            ));
        }
    }
    client.close();
    Ok(())
}

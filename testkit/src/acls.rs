//! Grant and revoke a topic ACL on a broker with an authorizer (KRaft's `StandardAuthorizer`), for
//! tests that take a permission away mid-stream: raw CreateAcls / DeleteAcls requests, sent as a super
//! user (the test kit's clusters make `User:ANONYMOUS`, the `PLAINTEXT` listener's principal, one).
//!
//! Must not go through avro-edge's producer or consumer, nor decide what a test does with the ACL.

use avro_edge::__test::{self as kafka, Client, ClientConfig, Target};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest};
use kafka_protocol::protocol::StrBytes;

/// Kafka's resource type TOPIC.
const TOPIC: i8 = 2;
/// Kafka's pattern type LITERAL.
const LITERAL: i8 = 3;
/// Kafka's permission type ALLOW.
const ALLOW: i8 = 3;

/// An operation a topic ACL allows (Kafka's `AclOperation` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclOperation {
    /// Produce (implies DESCRIBE: metadata).
    Write = 4,
    /// Metadata only.
    Describe = 8,
}

/// The `server.properties` lines that turn KRaft's `StandardAuthorizer` on with `User:ANONYMOUS` (the
/// `PLAINTEXT` and controller listeners' principal: the nodes themselves and the test kit's probes)
/// as the super user, and nothing allowed to anyone else without an ACL: for
/// [`crate::KafkaOpts::extra_props`].
pub fn authorizer_props() -> Vec<(String, String)> {
    [
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:ANONYMOUS"),
        ("allow.everyone.if.no.acl.found", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn admin(bootstrap: &str) -> Result<Client, String> {
    Client::new(ClientConfig {
        bootstrap: bootstrap.split(',').map(str::to_string).collect(),
        ..ClientConfig::default()
    })
    .map_err(|e| e.to_string())
}

/// Allow `principal` (e.g. `User:alice`) `op` on `topic` from any host, asking `bootstrap` (a
/// super user's listener).
pub fn allow_topic(
    bootstrap: &str,
    principal: &str,
    topic: &str,
    op: AclOperation,
) -> Result<(), String> {
    let client = admin(bootstrap)?;
    let req = CreateAclsRequest::default().with_creations(vec![
        AclCreation::default()
            .with_resource_type(TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_resource_pattern_type(LITERAL)
            .with_principal(StrBytes::from_string(principal.to_string()))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(op as i8)
            .with_permission_type(ALLOW),
    ]);
    let resp = kafka::block_on(client.request(&Target::Any, &req)).map_err(|e| e.to_string())?;
    client.close();
    match resp.results.iter().find(|r| r.error_code != 0) {
        Some(r) => Err(format!(
            "CreateAcls {principal} {op:?} {topic}: error {} {}",
            r.error_code,
            r.error_message.as_deref().unwrap_or("")
        )),
        None => Ok(()),
    }
}

/// Remove what [`allow_topic`] granted; returns how many ACLs the broker removed.
pub fn revoke_topic(
    bootstrap: &str,
    principal: &str,
    topic: &str,
    op: AclOperation,
) -> Result<usize, String> {
    let client = admin(bootstrap)?;
    let req = DeleteAclsRequest::default().with_filters(vec![
        DeleteAclsFilter::default()
            .with_resource_type_filter(TOPIC)
            .with_resource_name_filter(Some(StrBytes::from_string(topic.to_string())))
            .with_pattern_type_filter(LITERAL)
            .with_principal_filter(Some(StrBytes::from_string(principal.to_string())))
            .with_host_filter(Some(StrBytes::from_static_str("*")))
            .with_operation(op as i8)
            .with_permission_type(ALLOW),
    ]);
    let resp = kafka::block_on(client.request(&Target::Any, &req)).map_err(|e| e.to_string())?;
    client.close();
    let mut removed = 0;
    for r in &resp.filter_results {
        if r.error_code != 0 {
            return Err(format!(
                "DeleteAcls {principal} {op:?} {topic}: error {} {}",
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            ));
        }
        removed += r.matching_acls.len();
    }
    Ok(removed)
}

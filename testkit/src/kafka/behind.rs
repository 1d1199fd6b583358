//! A cluster reached through test-kit [`Proxy`]s: one node per proxy, each with an extra listener
//! that advertises its proxy's port, and each proxy pointed at its node's listener. A client
//! bootstrapped from the proxies then reaches the brokers only through them (bootstrap and every
//! metadata redirect: a gateway's uplink), while the brokers' own listeners stay direct.
//!
//! Must not set a proxy's mode (the test does) nor choose any other broker setting.

use std::net::SocketAddr;

use super::{KafkaCluster, KafkaListener, KafkaOpts, KafkaTestError};
use crate::net::Proxy;

impl KafkaCluster {
    /// Start `proxies.len()` nodes with `opts` and a plaintext listener `name` behind `proxies`
    /// (see the module doc).
    pub fn start_behind(
        proxies: &[Proxy],
        name: &str,
        mut opts: KafkaOpts,
    ) -> Result<KafkaCluster, KafkaTestError> {
        opts.listeners.push(KafkaListener {
            name: name.into(),
            sasl: false,
            tls: None,
            advertised_ports: proxies.iter().map(Proxy::port).collect(),
        });
        let at = opts.listeners.len() - 1;
        let cluster = KafkaCluster::start(proxies.len(), opts)?;
        for (i, proxy) in proxies.iter().enumerate() {
            let port = (cluster.nodes.get(i))
                .and_then(|n| n.listener_ports.get(at))
                .ok_or(KafkaTestError::NoSuchNode {
                    node: i,
                    size: cluster.nodes.len(),
                })?;
            proxy.set_upstream(SocketAddr::from(([127, 0, 0, 1], *port)));
        }
        Ok(cluster)
    }
}

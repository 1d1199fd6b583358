//! The soak's Kafka side: a 3-broker Apache Kafka cluster (replication 3, `min.insync.replicas=2`)
//! with a `GATEWAY` listener whose advertised ports are the [`Proxy`]s' (the gateway's uplink: the
//! forwarder bootstraps from them and metadata sends it back to them), the direct `PLAINTEXT`
//! listener for the consumer members and the checker, the topic, and the broker faults (kill,
//! pause, stop, start, coordinator lookup with FindCoordinator).
//!
//! Must not decide when faults happen (the nemesis does) and must not read records (the checker
//! does).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use avro_edge::__test::{self as kafka, Target};
use avro_edge::{Producer, ProducerConfig, TopicSpec};
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;

use crate::kafka::{KafkaCluster, KafkaOpts};
use crate::net::{Proxy, Traffic};

/// The listener the gateway uses (through the proxies).
const GATEWAY: &str = "GATEWAY";
/// A broker start (and a full ISR after one) may take this long on a busy 2-core machine.
pub const LONG: Duration = Duration::from_secs(180);

/// The cluster, its proxies, the topic and the group.
pub struct Site {
    cluster: Mutex<KafkaCluster>,
    /// The brokers' own listeners (consumers, checker, probes).
    pub direct: String,
    /// One proxy per broker, in node order.
    pub proxies: Vec<Proxy>,
    pub topic: String,
    pub group: String,
    pub partitions: i32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl Site {
    /// Start the proxies, then the cluster advertising them, then create the topic.
    pub fn start(nodes: usize, partitions: i32, tag: &str) -> Result<Site, String> {
        let proxies = (0..nodes)
            .map(|_| Proxy::bind())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("proxy: {e}"))?;
        let opts = KafkaOpts {
            ready_timeout: LONG,
            ..KafkaOpts::default()
        };
        let started = Instant::now();
        let cluster = KafkaCluster::start_behind(&proxies, GATEWAY, opts).map_err(text)?;
        eprintln!(
            "soak: {nodes} brokers up in {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            cluster.bootstrap()
        );
        let direct = cluster.bootstrap();
        let topic = crate::unique_topic(&format!("soak-{tag}"));
        create_topic(&direct, &topic, partitions)?;
        Ok(Site {
            cluster: Mutex::new(cluster),
            direct,
            proxies,
            group: format!("{topic}-members"),
            topic,
            partitions,
        })
    }

    /// The forwarder's bootstrap: the proxies.
    pub fn gateway_bootstrap(&self) -> String {
        let addrs: Vec<String> = self.proxies.iter().map(|p| p.addr().to_string()).collect();
        addrs.join(",")
    }

    pub fn nodes(&self) -> usize {
        self.proxies.len()
    }

    /// SIGKILL node `i`.
    pub fn kill(&self, i: usize) -> Result<(), String> {
        lock(&self.cluster).kill(i).map_err(text)
    }

    /// SIGSTOP node `i`.
    pub fn pause(&self, i: usize) -> Result<(), String> {
        lock(&self.cluster).pause(i).map_err(text)
    }

    /// SIGCONT node `i`.
    pub fn resume(&self, i: usize) -> Result<(), String> {
        lock(&self.cluster).resume(i).map_err(text)
    }

    /// Controlled shutdown of node `i`.
    pub fn stop(&self, i: usize) -> Result<(), String> {
        lock(&self.cluster).stop(i).map_err(text)
    }

    /// Start node `i` and wait until it serves metadata; tried up to 3 times. How long it took.
    pub fn start_node(&self, i: usize) -> Result<Duration, String> {
        let t = Instant::now();
        let mut last = String::new();
        for _ in 0..3 {
            match lock(&self.cluster).start_node(i) {
                Ok(()) => return Ok(t.elapsed()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        Err(last)
    }

    /// Every node running and unpaused (started if down, SIGCONT otherwise); what had to be done.
    pub fn heal_brokers(&self) -> Vec<String> {
        let mut done = Vec::new();
        for i in 0..self.nodes() {
            let _ = self.resume(i);
            if !lock(&self.cluster).is_running(i) {
                match self.start_node(i) {
                    Ok(t) => {
                        done.push(format!("node {} started ({:.1} s)", i + 1, t.as_secs_f64()))
                    }
                    Err(e) => done.push(format!("node {} did not start: {e}", i + 1)),
                }
            }
        }
        done
    }

    /// Wait until every partition of the topic has all replicas in sync.
    pub fn wait_in_sync(&self, within: Duration) -> Result<(), String> {
        let c = lock(&self.cluster);
        (c.wait_in_sync(&self.topic, self.partitions, self.nodes(), within)).map_err(text)
    }

    /// The address of partition `p`'s leader (direct listener).
    pub fn leader_addr(&self, p: i32) -> Result<String, String> {
        let c = lock(&self.cluster);
        let leader = c.leader(&self.topic, p).map_err(text)?;
        let id = leader.ok_or_else(|| format!("no leader for partition {p}"))?;
        let i = c.index_of(id).ok_or_else(|| format!("unknown node {id}"))?;
        Ok(c.node_addr(i))
    }

    /// The node index of the group's coordinator (FindCoordinator on the direct listeners),
    /// asked again for up to 20 s while brokers fail over.
    pub fn coordinator(&self) -> Result<usize, String> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            match find_coordinator(&self.direct, &self.group) {
                Ok(id) if id >= 1 && (id as usize) <= self.nodes() => return Ok(id as usize - 1),
                Ok(id) => return Err(format!("coordinator node {id} is not ours")),
                Err(e) if Instant::now() > end => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Apply `f` to every proxy (the whole uplink).
    pub fn uplink(&self, f: impl Fn(&Proxy) -> std::io::Result<()>) -> Result<(), String> {
        for p in &self.proxies {
            f(p).map_err(|e| format!("proxy {}: {e}", p.addr()))?;
        }
        Ok(())
    }

    /// What the uplink carried, all proxies together.
    pub fn traffic(&self) -> Traffic {
        let mut t = Traffic::default();
        for p in &self.proxies {
            let x = p.traffic();
            t.up += x.up;
            t.down += x.down;
            t.connections += x.connections;
            t.resets += x.resets;
        }
        t
    }
}

/// Create `topic` with `partitions` partitions, replication factor 3.
fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let mut cfg = ProducerConfig::new(bootstrap.split(','));
    cfg.auto_create = Some(TopicSpec {
        partitions,
        replication: 3,
    });
    let p = Producer::connect(cfg).map_err(text)?;
    let got = p.partitions(topic).map_err(text)?;
    p.close().map_err(text)?;
    if got != partitions {
        return Err(format!("{topic} has {got} partitions, not {partitions}"));
    }
    Ok(())
}

/// One FindCoordinator (v3, group key) through any direct listener: the coordinator's node id.
fn find_coordinator(bootstrap: &str, group: &str) -> Result<i32, String> {
    let bootstrap = bootstrap.split(',').map(str::to_string).collect();
    let client = crate::kafka::probe_client(bootstrap).map_err(text)?;
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let resp = kafka::block_on(async {
        let conn = client.conn(&Target::Any).await?;
        conn.request_at(&req, 3).await
    });
    client.close();
    let resp = resp.map_err(text)?;
    if resp.error_code != 0 {
        return Err(format!(
            "FindCoordinator {group}: error {}",
            resp.error_code
        ));
    }
    Ok(resp.node_id.0)
}

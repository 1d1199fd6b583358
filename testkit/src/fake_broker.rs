//! A scripted fake Kafka broker on a loopback socket, for tests of what a hostile or broken broker
//! can do to the client: it answers ApiVersions honestly (as itself, or exactly as Apache Kafka
//! 2.6 or tansu 0.6.0 do: [`Imitate`]), then asks a script what to answer to each request — the
//! honest answer it knows (one node, itself; every topic asked for has one partition; a group of
//! one member that leads itself), a crafted body, raw bytes, silence, an answer held back until
//! the test releases it, or a closed socket. [`FakeBroker::cluster`] starts several that name each
//! other in their metadata, each topic led by the node the test says.
//!
//! Must not be mistaken for a broker: it stores nothing (a script that wants Kafka's sequence
//! rules keeps a [`FakeLog`](crate::FakeLog)) and knows only what the client needs to reach the
//! request a test wants to answer badly.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Largest request frame the fake broker reads (the client's requests are small).
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// One request as the fake broker read it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The API key (0 Produce, 1 Fetch, 3 Metadata, 11 JoinGroup, 14 SyncGroup, ...).
    pub key: i16,
    /// The version the client chose.
    pub version: i16,
    /// The request's correlation id.
    pub corr: i32,
    /// How many requests with this key came before this one (over all connections).
    pub nth: usize,
    /// The request body, after the request header.
    pub body: Bytes,
    /// The node id of the fake broker that read it (0 unless started by [`FakeBroker::cluster`]).
    pub node: i32,
}

impl Call {
    /// The response header version Kafka uses for this request's answer.
    pub fn response_header_version(&self) -> i16 {
        ApiKey::try_from(self.key)
            .map(|k| k.response_header_version(self.version))
            .unwrap_or(0)
    }

    /// A whole response frame: length prefix, response header with this request's correlation id,
    /// then `body`.
    pub fn frame(&self, body: &[u8]) -> Vec<u8> {
        self.frame_with_corr(self.corr, body)
    }

    /// The request, decoded at the version the client chose (the default value if it does not
    /// decode).
    pub fn request<M: Decodable + Default>(&self) -> M {
        decode(self)
    }

    /// `msg` encoded as this request's answer body (at the request's version).
    pub fn answer<M: Encodable>(&self, msg: &M) -> Vec<u8> {
        encode(msg, self.version)
    }

    /// Like [`Call::frame`] with another correlation id in the header.
    pub fn frame_with_corr(&self, corr: i32, body: &[u8]) -> Vec<u8> {
        let mut payload = corr.to_be_bytes().to_vec();
        if self.response_header_version() >= 1 {
            payload.push(0); // no tagged fields
        }
        payload.extend_from_slice(body);
        let mut out = (payload.len() as i32).to_be_bytes().to_vec();
        out.extend(payload);
        out
    }
}

/// What the fake broker does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The honest answer it knows for this API (an empty answer for APIs it does not know).
    Honest,
    /// This response body after a correct response header.
    Body(Vec<u8>),
    /// These bytes verbatim (length prefix included, if any), then go on reading requests.
    Raw(Vec<u8>),
    /// These bytes verbatim, then close the connection.
    RawThenClose(Vec<u8>),
    /// Never answer (the connection stays open).
    Silence,
    /// This response body, held back until [`FakeBroker::release`]; the connection's later
    /// requests are read (and counted) but wait unanswered behind it, as a broker mutes a
    /// connection until it has answered its current request (a leader holding an acks=all
    /// produce for its followers).
    Held(Vec<u8>),
    /// Close the connection without answering.
    Close,
}

type Script = dyn Fn(&Call) -> Reply + Send + Sync;
type LeaderOf = dyn Fn(&str) -> i32 + Send + Sync;
/// Per connection: a handle to write on it, and the answer frame held back for it.
type HeldAnswers = HashMap<u64, (TcpStream, Vec<u8>)>;

/// Which broker the fake broker's ApiVersions answer is, byte for byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Imitate {
    /// Itself: the APIs it knows, and a finalized-features epoch of 0 (as a KRaft-era broker).
    #[default]
    Fake,
    /// Apache Kafka 2.6.0: every API it announces with its version range (the message
    /// definitions at the 2.6.0 tag), and in v3 no tagged fields at all (feature flags, KIP-584,
    /// came with 2.7). Decoded, it reads "no features, epoch -1", as tansu's does.
    Kafka26,
    /// tansu 0.6.0: the fake's own APIs, no features, and in v3 the four tagged fields tansu
    /// writes at their default values (empty supported features, epoch -1, empty finalized
    /// features, ZkMigrationReady false: tansu-service `api.rs`).
    Tansu060,
}

/// Apache Kafka 2.6.0's ApiVersions table: (api key, max version); every min version is 0.
const KAFKA_2_6_APIS: &[(i16, i16)] = &[
    (0, 8),
    (1, 11),
    (2, 5),
    (3, 9),
    (4, 4),
    (5, 3),
    (6, 6),
    (7, 3),
    (8, 8),
    (9, 7),
    (10, 3),
    (11, 7),
    (12, 4),
    (13, 4),
    (14, 5),
    (15, 5),
    (16, 4),
    (17, 1),
    (18, 3),
    (19, 5),
    (20, 4),
    (21, 2),
    (22, 3),
    (23, 3),
    (24, 1),
    (25, 1),
    (26, 1),
    (27, 0),
    (28, 3),
    (29, 2),
    (30, 2),
    (31, 2),
    (32, 3),
    (33, 1),
    (34, 1),
    (35, 2),
    (36, 2),
    (37, 2),
    (38, 2),
    (39, 2),
    (40, 2),
    (41, 2),
    (42, 2),
    (43, 2),
    (44, 1),
    (45, 0),
    (46, 0),
    (47, 0),
    (48, 0),
    (49, 0),
];

/// The tagged-field section tansu 0.6.0 ends its ApiVersions v3+ answer with: 4 fields, as
/// (tag, size, value): 0 `[]`, 1 `-1i64`, 2 `[]`, 3 `false`. tansu-service `api.rs` sets all four
/// (`Some`), and the writers tansu-sans-io's `build.rs` generates write every tagged field that
/// is set, at its default value or not (Kafka's leave those out).
const TANSU_060_TAGS: &[u8] = &[
    4, 0, 1, 1, 1, 8, 255, 255, 255, 255, 255, 255, 255, 255, 2, 1, 1, 3, 1, 0,
];

struct State {
    script: Arc<Script>,
    imitate: Imitate,
    port: u16,
    /// This broker's node id and the ports of nodes `0..n` (its own included).
    node: i32,
    nodes: Vec<u16>,
    /// The node leading a topic's partition.
    leader_of: Arc<LeaderOf>,
    max_versions: HashMap<i16, i16>,
    seen: Mutex<HashMap<i16, usize>>,
    /// Answers held back per connection ([`Reply::Held`]), with a handle to write them.
    held: Mutex<HeldAnswers>,
    /// Signalled when held answers are released.
    released: std::sync::Condvar,
    stop: AtomicBool,
}

/// A running fake broker; stops accepting connections when dropped.
pub struct FakeBroker {
    state: Arc<State>,
    addr: String,
}

/// The APIs the fake broker announces, with the version range it announces for each.
const APIS: &[(i16, i16, i16)] = &[
    (0, 3, 9),  // Produce
    (1, 4, 12), // Fetch
    (2, 1, 7),  // ListOffsets
    (3, 1, 12), // Metadata
    (8, 2, 8),  // OffsetCommit
    (9, 1, 8),  // OffsetFetch
    (10, 0, 4), // FindCoordinator
    (11, 0, 9), // JoinGroup
    (12, 0, 4), // Heartbeat
    (13, 0, 5), // LeaveGroup
    (14, 0, 5), // SyncGroup
    (18, 0, 3), // ApiVersions
    (22, 0, 4), // InitProducerId
];

impl FakeBroker {
    /// Listen on a free loopback port and answer every connection with `script`.
    pub fn start(script: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> std::io::Result<Self> {
        Self::with_max_versions(&[], script)
    }

    /// Like [`FakeBroker::start`], announcing at most `max_versions` (api key, version) for
    /// the APIs listed (e.g. `(3, 8)`: Metadata v8, the last version before flexible encoding).
    pub fn with_max_versions(
        max_versions: &[(i16, i16)],
        script: impl Fn(&Call) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::alone(Imitate::Fake, max_versions, Arc::new(script))
    }

    /// `n` fake brokers (node ids `0..n`) that list each other in their metadata; every topic
    /// has one partition, led by node `leader_of(topic)`. One script answers for all of them
    /// ([`Call::node`] says which node read the request).
    pub fn cluster(
        n: usize,
        leader_of: impl Fn(&str) -> i32 + Send + Sync + 'static,
        script: impl Fn(&Call) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Vec<Self>> {
        let listeners = (0..n.max(1))
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let nodes = (listeners.iter())
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let (leader_of, script): (Arc<LeaderOf>, Arc<Script>) =
            (Arc::new(leader_of), Arc::new(script));
        (listeners.into_iter().enumerate())
            .map(|(id, l)| {
                let node = Node {
                    id: id as i32,
                    nodes: nodes.clone(),
                    leader_of: leader_of.clone(),
                };
                Self::launch(l, node, Imitate::Fake, &[], script.clone())
            })
            .collect()
    }

    /// Like [`FakeBroker::start`], answering ApiVersions as `imitate` says.
    pub fn imitating(
        imitate: Imitate,
        script: impl Fn(&Call) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::alone(imitate, &[], Arc::new(script))
    }

    /// One fake broker, node 0, leading every topic.
    fn alone(
        imitate: Imitate,
        max_versions: &[(i16, i16)],
        script: Arc<Script>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let node = Node {
            id: 0,
            nodes: vec![listener.local_addr()?.port()],
            leader_of: Arc::new(|_: &str| 0),
        };
        Self::launch(listener, node, imitate, max_versions, script)
    }

    fn launch(
        listener: TcpListener,
        node: Node,
        imitate: Imitate,
        max_versions: &[(i16, i16)],
        script: Arc<Script>,
    ) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            script,
            imitate,
            port,
            node: node.id,
            nodes: node.nodes,
            leader_of: node.leader_of,
            max_versions: max_versions.iter().copied().collect(),
            seen: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            released: std::sync::Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for (conn, stream) in (0u64..).zip(listener.incoming()) {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = accept_state.clone();
                std::thread::spawn(move || serve(stream, conn, s));
            }
        });
        Ok(FakeBroker {
            state,
            addr: format!("127.0.0.1:{port}"),
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Write every answer held back ([`Reply::Held`]); the requests read behind them are
    /// answered from now on, in order.
    pub fn release(&self) {
        let mut held = self.state.held.lock().unwrap_or_else(|p| p.into_inner());
        for (_, (mut stream, frame)) in held.drain() {
            let _ = stream.write_all(&frame);
        }
        self.state.released.notify_all();
    }

    /// How many requests with `key` the fake broker has read (received, answered or not).
    pub fn calls(&self, key: i16) -> usize {
        self.state
            .seen
            .lock()
            .map(|s| s.get(&key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Where a fake broker sits among its peers (see [`FakeBroker::cluster`]).
struct Node {
    id: i32,
    nodes: Vec<u16>,
    leader_of: Arc<LeaderOf>,
}

/// Read requests as they arrive (counted then, see [`FakeBroker::calls`]) and answer them in
/// order; while an answer of the connection is held, the next request waits unprocessed, as a
/// broker mutes a connection until it has answered its current request.
fn serve(stream: TcpStream, conn: u64, state: Arc<State>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let Ok(mut reader) = stream.try_clone() else {
        return;
    };
    let reading = state.clone();
    std::thread::spawn(move || {
        while let Some(call) = read_call(&mut reader, &reading) {
            if tx.send(call).is_err() {
                return;
            }
        }
    });
    for call in rx {
        if !answer(&stream, conn, &state, &call) {
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Answer one request as the script says (after the connection's held answer is released);
/// `false`: the connection is done.
fn answer(mut stream: &TcpStream, conn: u64, state: &State, call: &Call) -> bool {
    let mut held = state.held.lock().unwrap_or_else(|p| p.into_inner());
    while held.contains_key(&conn) {
        held = (state.released.wait(held)).unwrap_or_else(|p| p.into_inner());
    }
    drop(held);
    let reply = if call.key == 18 {
        Reply::Honest
    } else {
        (state.script)(call)
    };
    let out = match reply {
        Reply::Honest => call.frame(&honest(call, state)),
        Reply::Body(b) => call.frame(&b),
        Reply::Held(b) => {
            let Ok(s) = stream.try_clone() else {
                return false;
            };
            let mut held = state.held.lock().unwrap_or_else(|p| p.into_inner());
            held.insert(conn, (s, call.frame(&b)));
            return true;
        }
        Reply::Raw(b) => b,
        Reply::RawThenClose(b) => {
            let _ = stream.write_all(&b);
            return false;
        }
        Reply::Silence => return true,
        Reply::Close => return false,
    };
    stream.write_all(&out).is_ok()
}

fn read_call(stream: &mut TcpStream, state: &State) -> Option<Call> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let len = usize::try_from(i32::from_be_bytes(len)).ok()?;
    if !(8..=MAX_REQUEST).contains(&len) {
        return None;
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).ok()?;
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let mut buf = Bytes::from(frame);
    let hv = ApiKey::try_from(key)
        .map(|k| k.request_header_version(version))
        .unwrap_or(1);
    let header = RequestHeader::decode(&mut buf, hv).ok()?;
    let nth = {
        let mut seen = state.seen.lock().ok()?;
        let n = seen.entry(key).or_insert(0);
        *n += 1;
        *n - 1
    };
    Some(Call {
        key,
        version,
        corr: header.correlation_id,
        nth,
        body: buf,
        node: state.node,
    })
}

fn encode<M: Encodable>(msg: &M, version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    // An honest answer that does not encode is a fake-broker bug: say so, and answer nothing
    // (the client then fails to decode, visibly).
    if let Err(e) = msg.encode(&mut out, version) {
        eprintln!("fake broker: cannot encode its own answer at v{version}: {e}");
        out.clear();
    }
    out
}

fn decode<M: Decodable + Default>(call: &Call) -> M {
    M::decode(&mut call.body.clone(), call.version).unwrap_or_default()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The honest answer to `call` (an empty body for an API the fake broker does not know).
fn honest(call: &Call, state: &State) -> Vec<u8> {
    let v = call.version;
    match call.key {
        18 => api_versions(state, v),
        3 => encode(&metadata(decode(call), state), v),
        10 => encode(&find_coordinator(decode(call), v, state), v),
        11 => encode(&join_group(decode(call), v), v),
        14 => {
            let req: SyncGroupRequest = decode(call);
            let mine = req
                .assignments
                .into_iter()
                .find(|a| a.member_id == req.member_id);
            let r = SyncGroupResponse::default()
                .with_protocol_type((v >= 5).then(|| s("consumer")))
                .with_protocol_name(req.protocol_name)
                .with_assignment(mine.map(|a| a.assignment).unwrap_or_default());
            encode(&r, v)
        }
        9 => encode(&offset_fetch(decode(call), v), v),
        8 => encode(&offset_commit(decode(call)), v),
        2 => encode(&list_offsets(decode(call)), v),
        1 => encode(&fetch(decode(call)), v),
        0 => encode(&produce(decode(call)), v),
        22 => encode(
            &InitProducerIdResponse::default().with_producer_id(ProducerId(1)),
            v,
        ),
        12 => encode(&HeartbeatResponse::default(), v),
        13 => encode(&LeaveGroupResponse::default(), v),
        _ => Vec::new(),
    }
}

/// The ApiVersions answer body at version `v`, as [`State::imitate`] says.
fn api_versions(state: &State, v: i16) -> Vec<u8> {
    api_versions_with(state.imitate, &state.max_versions, v)
}

/// The ApiVersions answer body (after the response header) at version `version` of the broker
/// `imitate` names, byte for byte (the fake broker's own: its APIs at their full ranges).
pub fn api_versions_answer(imitate: Imitate, version: i16) -> Vec<u8> {
    api_versions_with(imitate, &HashMap::new(), version)
}

fn api_versions_with(imitate: Imitate, max_versions: &HashMap<i16, i16>, v: i16) -> Vec<u8> {
    let own = || {
        announce(
            APIS.iter()
                .map(|&(key, min, max)| (key, min, max_versions.get(&key).copied().unwrap_or(max))),
        )
    };
    match imitate {
        Imitate::Fake => encode(
            &ApiVersionsResponse::default()
                .with_finalized_features_epoch(0)
                .with_api_keys(own()),
            v,
        ),
        // kafka-protocol, like Kafka's own writers, leaves out tagged fields at their defaults:
        // with no features and epoch -1 the v3 answer has no tagged fields, as 2.6's.
        Imitate::Kafka26 => encode(
            &ApiVersionsResponse::default().with_api_keys(announce(
                KAFKA_2_6_APIS.iter().map(|&(key, max)| (key, 0, max)),
            )),
            v,
        ),
        Imitate::Tansu060 => {
            let mut body = encode(&ApiVersionsResponse::default().with_api_keys(own()), v);
            if v >= 3 && body.last() == Some(&0) {
                body.pop(); // the empty tagged-field section
                body.extend_from_slice(TANSU_060_TAGS);
            }
            body
        }
    }
}

/// ApiVersions entries for (api key, min, max version) triples.
fn announce(table: impl Iterator<Item = (i16, i16, i16)>) -> Vec<ApiVersion> {
    table
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

fn metadata(req: MetadataRequest, state: &State) -> MetadataResponse {
    let names = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.name);
    let partition = |leader: i32| {
        metadata_response::MetadataResponsePartition::default()
            .with_leader_id(BrokerId(leader))
            .with_replica_nodes(vec![BrokerId(leader)])
            .with_isr_nodes(vec![BrokerId(leader)])
    };
    let brokers = (state.nodes.iter().enumerate())
        .map(|(id, port)| {
            metadata_response::MetadataResponseBroker::default()
                .with_node_id(BrokerId(id as i32))
                .with_host(s("127.0.0.1"))
                .with_port(*port as i32)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(BrokerId(0))
        .with_topics(
            names
                .map(|n| {
                    let leader = (state.leader_of)(n.as_str());
                    metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(n))
                        .with_partitions(vec![partition(leader)])
                })
                .collect(),
        )
}

fn find_coordinator(req: FindCoordinatorRequest, v: i16, state: &State) -> FindCoordinatorResponse {
    let (node, port) = (state.node, state.port);
    let r = FindCoordinatorResponse::default();
    if v < 4 {
        return r
            .with_node_id(BrokerId(node))
            .with_host(s("127.0.0.1"))
            .with_port(port as i32);
    }
    r.with_coordinators(
        req.coordinator_keys
            .into_iter()
            .map(|key| {
                find_coordinator_response::Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(s("127.0.0.1"))
                    .with_port(port as i32)
            })
            .collect(),
    )
}

/// A group of one: the member leads itself and gets its own metadata back.
fn join_group(req: JoinGroupRequest, v: i16) -> JoinGroupResponse {
    let member = if req.member_id.is_empty() {
        s("fake-member-1")
    } else {
        req.member_id
    };
    let proto = req.protocols.into_iter().next().unwrap_or_default();
    JoinGroupResponse::default()
        .with_generation_id(1)
        .with_protocol_type((v >= 7).then(|| s("consumer")))
        .with_protocol_name(Some(proto.name))
        .with_leader(member.clone())
        .with_member_id(member.clone())
        .with_members(vec![
            join_group_response::JoinGroupResponseMember::default()
                .with_member_id(member)
                .with_metadata(proto.metadata),
        ])
}

fn offset_fetch(req: OffsetFetchRequest, v: i16) -> OffsetFetchResponse {
    use offset_fetch_response::*;
    let old_topics = req.topics.unwrap_or_default().into_iter().map(|t| {
        OffsetFetchResponseTopic::default()
            .with_name(t.name)
            .with_partitions(
                t.partition_indexes
                    .into_iter()
                    .map(|p| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                    })
                    .collect(),
            )
    });
    let groups = req.groups.into_iter().map(|g| {
        OffsetFetchResponseGroup::default()
            .with_group_id(g.group_id)
            .with_topics(
                g.topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        OffsetFetchResponseTopics::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partition_indexes
                                    .into_iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    });
    if v < 8 {
        OffsetFetchResponse::default().with_topics(old_topics.collect())
    } else {
        OffsetFetchResponse::default().with_groups(groups.collect())
    }
}

fn offset_commit(req: OffsetCommitRequest) -> OffsetCommitResponse {
    use offset_commit_response::*;
    OffsetCommitResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn list_offsets(req: ListOffsetsRequest) -> ListOffsetsResponse {
    use list_offsets_response::*;
    ListOffsetsResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_timestamp(-1)
                                    .with_offset(0)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn fetch(req: FetchRequest) -> FetchResponse {
    use fetch_response::*;
    FetchResponse::default().with_responses(
        req.topics
            .into_iter()
            .map(|t| {
                FetchableTopicResponse::default()
                    .with_topic(t.topic)
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| PartitionData::default().with_partition_index(p.partition))
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn produce(req: ProduceRequest) -> ProduceResponse {
    use produce_response::*;
    ProduceResponse::default().with_responses(
        req.topic_data
            .into_iter()
            .map(|t| {
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_partition_responses(
                        t.partition_data
                            .into_iter()
                            .map(|p| PartitionProduceResponse::default().with_index(p.index))
                            .collect(),
                    )
            })
            .collect(),
    )
}

//! A small in-process Schema Registry for tests and demos, answering as Karapace 6.2.0 did in the
//! recordings under `fixtures/registry/`: global ids (the same schema by parsed form gets the same id
//! under any subject), subjects and versions, soft and permanent deletes, `?deleted=true`,
//! global and subject config, the compatibility endpoint and 409 on an incompatible register,
//! error codes and messages as recorded, and schema strings re-serialised with sorted keys.
//!
//! Must not be used as a production registry (state is in memory) and must not encode or decode records.
//!
//! Its parts: `http` (HTTP/1.1 I/O), `routes` (requests to operations), `body` (request bodies parsed and
//! checked), `store` (subjects, versions, ids),
//! `compatibility`, `config` (compatibility levels), `reply` (answers and error codes); schema files to subjects come from
//! `registry::schema_files`, shared with `schemas push`.

mod body;
mod compatibility;
mod config;
mod http;
mod reply;
mod routes;
mod store;

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::schema_files::avsc_files;
pub use reply::ApiError;
pub use store::RegistryState;

use http::accept_loop;

pub(super) struct Shared {
    pub(super) state: Mutex<RegistryState>,
    pub(super) stop: AtomicBool,
    pub(super) requests: AtomicUsize,
    pub(super) conns: Mutex<HashMap<u64, TcpStream>>,
    pub(super) next_conn: AtomicU64,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running test registry on a loopback port; stops on drop.
pub struct TestRegistry {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl TestRegistry {
    /// Start on `127.0.0.1:<free port>`. Panics if loopback cannot be bound (tests only).
    pub fn start() -> TestRegistry {
        match TestRegistry::bind("127.0.0.1:0") {
            Ok(r) => r,
            Err(e) => panic!("cannot bind a loopback port for the test registry: {e}"),
        }
    }

    /// Start on `addr` (e.g. `127.0.0.1:8081`).
    pub fn bind(addr: &str) -> std::io::Result<TestRegistry> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(RegistryState::default()),
            stop: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name("test-registry".into())
            .spawn(move || accept_loop(listener, sh))?;
        tracing::debug!(%addr, "test registry listening");
        Ok(TestRegistry {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The loopback address the test registry listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many HTTP requests it has answered.
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Register a schema directly (no HTTP), as `POST /subjects/{subject}/versions` would.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, ApiError> {
        self.shared.state().register(subject, schema)
    }

    /// Register `.avsc` files (a directory expands to its files, sorted by subject then `-vN`
    /// version) under the subject named by each file (see [`crate::subject_for_file`]); `(subject, id)`s.
    pub fn preload(&self, path: &Path) -> Result<Vec<(String, u32)>, String> {
        let mut out = Vec::new();
        for (subject, file) in avsc_files(path)? {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let id = self
                .register(&subject, &text)
                .map_err(|e| format!("{}: {} {}", file.display(), e.code, e.message))?;
            out.push((subject, id));
        }
        Ok(out)
    }

    /// Stop listening and close every open connection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, c) in conns {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

//! A TCP proxy for fault tests: it sits between clients and one server (a broker), on its own
//! loopback port, and is switched at run time between
//! - **pass**: bytes go through as they come;
//! - **cut**: new connections refused ([`NewConns::Refuse`]: the port stops listening, connects get
//!   ECONNREFUSED) or black-holed ([`NewConns::Blackhole`]: the kernel completes the handshake, then
//!   nothing is served until the cut ends), and live connections closed with a reset
//!   ([`Existing::Close`]) or frozen ([`Existing::Freeze`]: nothing goes either way; what was sent
//!   meanwhile is delivered when the cut ends, as after a healed partition);
//! - **slow**: through a [`Link`] (a bandwidth cap in bit/s each way, shared by everything that uses
//!   the same link, plus a delay each way);
//! - **reset** ([`Proxy::reset`]): every live connection reset (RST both ways), then pass.
//!
//! It counts the bytes it delivered each way ([`Traffic`]): the bytes on the wire of a link.
//! Kafka brokers advertise the proxies' ports (`KafkaListener::advertised_ports`) so that every
//! client connection, the ones metadata redirects included, goes through them.
//!
//! Pure `std` threads (a reader and a writer per direction per connection), Linux only (resets and
//! refusals use `connect(AF_UNSPEC)`, see `sys`). Must not know what it carries (no Kafka), and
//! must not be used outside tests: it trades efficiency for plain, observable behaviour.

mod conn;
mod link;
mod sys;

pub use link::{Dir, Link};

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use conn::Sockets;

/// What happens to new connections during a [`Cut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewConns {
    /// The port stops listening: connects are refused.
    Refuse,
    /// Connects complete (the kernel's backlog) but are not served until the cut ends.
    Blackhole,
}

/// What happens to live connections during a [`Cut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Reset (RST both ways) when the cut starts.
    Close,
    /// Kept open, nothing delivered either way until the cut ends.
    Freeze,
}

/// A cut link: see [`NewConns`] and [`Existing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub new: NewConns,
    pub existing: Existing,
}

impl Cut {
    /// A peer that answers with resets: connects refused, live connections reset.
    pub const REFUSE: Cut = Cut {
        new: NewConns::Refuse,
        existing: Existing::Close,
    };
    /// A link that silently drops everything: connects hang, live connections freeze.
    pub const BLACKHOLE: Cut = Cut {
        new: NewConns::Blackhole,
        existing: Existing::Freeze,
    };
}

/// The proxy's mode; see the module doc.
#[derive(Debug, Clone)]
pub enum Mode {
    Pass,
    Cut(Cut),
    Slow(Arc<Link>),
}

/// What a proxy delivered since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes delivered client → server.
    pub up: u64,
    /// Bytes delivered server → client.
    pub down: u64,
    /// Client connections accepted.
    pub connections: u64,
    /// Live connections reset by a cut or [`Proxy::reset`].
    pub resets: u64,
}

/// The state the accept loop and the connection pumps share.
#[derive(Debug)]
pub(crate) struct Shared {
    listener: TcpListener,
    upstream: Mutex<Option<SocketAddr>>,
    mode: Mutex<Mode>,
    changed: Condvar,
    conns: Mutex<(u64, HashMap<u64, Arc<Sockets>>)>,
    up: AtomicU64,
    down: AtomicU64,
    connections: AtomicU64,
    resets: AtomicU64,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        lock(&self.mode).clone()
    }

    /// Wait up to `at_most` for a mode change.
    pub(crate) fn wait_change(&self, at_most: Duration) {
        let g = lock(&self.mode);
        let _ = self.changed.wait_timeout(g, at_most);
    }

    fn upstream(&self) -> Option<SocketAddr> {
        *lock(&self.upstream)
    }

    fn count(&self, dir: Dir, n: usize) {
        let c = match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn register(&self, s: Arc<Sockets>) -> u64 {
        let mut g = lock(&self.conns);
        g.0 += 1;
        let id = g.0;
        g.1.insert(id, s.clone());
        drop(g);
        // A cut that closes connections may have started while this one was being dialled.
        if matches!(self.mode(), Mode::Cut(c) if c.existing == Existing::Close) {
            s.abort();
        }
        id
    }

    fn deregister(&self, id: u64) {
        lock(&self.conns).1.remove(&id);
    }

    fn abort_all(&self) {
        let live: Vec<Arc<Sockets>> = lock(&self.conns).1.values().cloned().collect();
        for s in &live {
            s.abort();
        }
        self.resets.fetch_add(live.len() as u64, Ordering::Relaxed);
    }
}

/// A running proxy; stops (and resets its connections) on drop.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on a free loopback port with no upstream yet (connections are reset until
    /// [`set_upstream`](Self::set_upstream)): its port can be advertised before the server starts.
    pub fn bind() -> io::Result<Proxy> {
        let listener = bind_explicit_port()?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            listener,
            upstream: Mutex::new(None),
            mode: Mutex::new(Mode::Pass),
            changed: Condvar::new(),
            conns: Mutex::new((0, HashMap::new())),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(&s));
        Ok(Proxy {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// A proxy to `upstream` on a free loopback port.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let p = Proxy::bind()?;
        p.set_upstream(upstream);
        Ok(p)
    }

    /// Where new connections are forwarded to.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = Some(upstream);
    }

    /// The proxy's own address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The mode now.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Switch to `mode`; a cut with [`Existing::Close`] resets the live connections before this
    /// returns, a cut with [`NewConns::Refuse`] has stopped listening when this returns.
    pub fn set(&self, mode: Mode) -> io::Result<()> {
        let sh = &self.shared;
        let was_refusing = {
            let mut g = lock(&sh.mode);
            let was = matches!(&*g, Mode::Cut(c) if c.new == NewConns::Refuse);
            *g = mode.clone();
            was
        };
        sh.changed.notify_all();
        let refusing = matches!(&mode, Mode::Cut(c) if c.new == NewConns::Refuse);
        if refusing && !was_refusing {
            sys::disconnect(&sh.listener)?;
        } else if was_refusing && !refusing {
            sys::relisten(&sh.listener)?;
        }
        if matches!(&mode, Mode::Cut(c) if c.existing == Existing::Close) {
            sh.abort_all();
        }
        Ok(())
    }

    /// Pass everything again.
    pub fn pass(&self) -> io::Result<()> {
        self.set(Mode::Pass)
    }

    /// Reset every live connection (RST both ways), then pass.
    pub fn reset(&self) -> io::Result<()> {
        self.shared.abort_all();
        self.pass()
    }

    /// Bytes and connections so far.
    pub fn traffic(&self) -> Traffic {
        let s = &self.shared;
        Traffic {
            up: s.up.load(Ordering::Relaxed),
            down: s.down.load(Ordering::Relaxed),
            connections: s.connections.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
        }
    }

    /// Live connections now.
    pub fn live(&self) -> usize {
        lock(&self.shared.conns).1.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        self.shared.abort_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Bind a loopback listener to an explicit free port: a socket bound to port 0 loses its port
/// when it stops listening, one bound to a named port keeps it (Linux `SOCK_BINDPORT_LOCK`).
fn bind_explicit_port() -> io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

/// Accept while the mode lets new connections in; each served on its own thread.
fn accept_loop(sh: &Arc<Shared>) {
    while !sh.stop.load(Ordering::SeqCst) {
        if matches!(sh.mode(), Mode::Cut(_)) {
            sh.wait_change(Duration::from_millis(50));
            continue;
        }
        match sh.listener.accept() {
            Ok((client, _)) => {
                sh.connections.fetch_add(1, Ordering::Relaxed);
                if client.set_nonblocking(false).is_ok() {
                    let s = sh.clone();
                    std::thread::spawn(move || conn::serve(s, client));
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

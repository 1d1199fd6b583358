//! One proxied connection: the upstream dial, then a pump per direction (a reader thread that
//! reads what its side sends, a writer that delivers it to the other side as the proxy's mode
//! allows: at once, shaped by a [`Link`](super::Link), held while frozen). A reset or failure on
//! one side resets the other; an orderly close (FIN) is passed on as a half-close.
//!
//! Must not decide modes or accept connections (that is `super::Proxy`); it only obeys
//! [`Shared::mode`] and counts what it delivered.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use super::link::{Dir, PIECE, sleep_until};
use super::sys::disconnect;
use super::{Existing, Mode, Shared};

/// How long the dial to the upstream may take (a SIGSTOPped broker still completes it).
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Chunks read ahead per direction before the reader stops reading (then TCP's window closes).
const QUEUE: usize = 64;
/// How often a frozen writer looks again whether its connection was reset.
const FROZEN_RECHECK: Duration = Duration::from_millis(100);

/// The two sockets of a live connection.
#[derive(Debug)]
pub(super) struct Sockets {
    client: TcpStream,
    upstream: TcpStream,
    dead: AtomicBool,
}

impl Sockets {
    /// Reset both sides (RST each way) and wake everything blocked on them.
    pub(super) fn abort(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = disconnect(&self.client);
        let _ = disconnect(&self.upstream);
    }

    fn dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Where data going `dir` comes from and goes to.
    fn ends(&self, dir: Dir) -> (&TcpStream, &TcpStream) {
        match dir {
            Dir::Up => (&self.client, &self.upstream),
            Dir::Down => (&self.upstream, &self.client),
        }
    }
}

enum Msg {
    Data(Instant, Vec<u8>),
    Eof,
    Failed,
}

/// Serve one accepted client connection until both directions are done.
pub(super) fn serve(shared: Arc<Shared>, client: TcpStream) {
    let dialled = shared
        .upstream()
        .ok_or_else(|| io::Error::other("no upstream set"))
        .and_then(|addr| TcpStream::connect_timeout(&addr, DIAL_TIMEOUT));
    let upstream = match dialled {
        Ok(s) => s,
        Err(_) => {
            // As close as a proxy gets to the server's refusal: the client is reset.
            let _ = disconnect(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let socks = Arc::new(Sockets {
        client,
        upstream,
        dead: AtomicBool::new(false),
    });
    let id = shared.register(socks.clone());
    let mut threads = Vec::new();
    for dir in [Dir::Up, Dir::Down] {
        let (tx, rx) = sync_channel(QUEUE);
        if let Ok(src) = socks.ends(dir).0.try_clone() {
            threads.push(std::thread::spawn(move || read_side(src, tx)));
        } else {
            socks.abort();
        }
        let (shared, socks) = (shared.clone(), socks.clone());
        threads.push(std::thread::spawn(move || {
            write_side(&shared, &socks, dir, rx)
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    shared.deregister(id);
}

fn read_side(mut src: TcpStream, tx: SyncSender<Msg>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match src.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Msg::Eof);
                return;
            }
            Ok(n) => {
                if tx
                    .send(Msg::Data(Instant::now(), buf[..n].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = tx.send(Msg::Failed);
                return;
            }
        }
    }
}

fn write_side(shared: &Shared, socks: &Sockets, dir: Dir, rx: Receiver<Msg>) {
    let dst = socks.ends(dir).1;
    for msg in rx {
        match msg {
            Msg::Data(read_at, bytes) => {
                if deliver(shared, socks, dir, read_at, &bytes).is_err() {
                    socks.abort();
                    return;
                }
            }
            Msg::Eof => {
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Msg::Failed => {
                socks.abort();
                return;
            }
        }
    }
}

/// Deliver `bytes` (read at `read_at`) as the mode allows, looking at the mode again per piece.
fn deliver(
    shared: &Shared,
    socks: &Sockets,
    dir: Dir,
    read_at: Instant,
    bytes: &[u8],
) -> io::Result<()> {
    let mut dst = socks.ends(dir).1;
    let mut rest = bytes;
    while !rest.is_empty() {
        if socks.dead() {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        match shared.mode() {
            Mode::Pass => {
                dst.write_all(rest)?;
                shared.count(dir, rest.len());
                return Ok(());
            }
            Mode::Slow(link) => {
                sleep_until(read_at + link.delay());
                let n = rest.len().min(PIECE);
                sleep_until(link.book(dir, n));
                dst.write_all(&rest[..n])?;
                shared.count(dir, n);
                rest = &rest[n..];
            }
            Mode::Cut(cut) => match cut.existing {
                Existing::Freeze => shared.wait_change(FROZEN_RECHECK),
                Existing::Close => return Err(io::ErrorKind::ConnectionReset.into()),
            },
        }
    }
    Ok(())
}

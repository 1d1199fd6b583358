//! A slow link for the proxy: a bandwidth cap in bit/s for each direction and a delay added to each
//! direction, shared by every connection (and every proxy) that uses the same [`Link`], as one
//! gateway uplink is shared by all its connections to all brokers.
//!
//! Must not touch sockets: it only says when a piece of data may go out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which way data flows through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server (the gateway's upload).
    Up,
    /// Server to client.
    Down,
}

/// The largest piece a shaped write sends at once: at 64 kbit/s, 64 ms of the link.
pub(super) const PIECE: usize = 512;

/// A serial link: each direction sends one piece after the other at `bits_per_sec`, each piece
/// `delay` after it was read from its sender.
#[derive(Debug)]
pub struct Link {
    bits_per_sec: u64,
    delay: Duration,
    /// When each direction's link is free again (`[Up, Down]`).
    free_at: [Mutex<Instant>; 2],
}

impl Link {
    /// A link of `bits_per_sec` each way (at least 1) that delays every byte by `delay` each way (so
    /// a request and its answer take `2 × delay` more).
    pub fn new(bits_per_sec: u64, delay: Duration) -> Link {
        let now = Instant::now();
        Link {
            bits_per_sec: bits_per_sec.max(1),
            delay,
            free_at: [Mutex::new(now), Mutex::new(now)],
        }
    }

    /// The cap, bit/s each way.
    pub fn bits_per_sec(&self) -> u64 {
        self.bits_per_sec
    }

    /// The delay added to each direction.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Book `bytes` on direction `dir` of the link: when their transmission ends (the caller
    /// writes them then). Pieces are booked one after another, whoever books them.
    pub(super) fn book(&self, dir: Dir, bytes: usize) -> Instant {
        let took = Duration::from_secs_f64(bytes as f64 * 8.0 / self.bits_per_sec as f64);
        let slot = &self.free_at[dir as usize];
        let mut free = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let end = (*free).max(Instant::now()) + took;
        *free = end;
        end
    }
}

/// Sleep until `t` (no sleep when it has passed).
pub(super) fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

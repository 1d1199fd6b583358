//! SIGTERM through the real signal handlers: the forwarder stops reading, drains, and returns normally.
//! (Its own test binary: the handlers are process-wide.)

use std::io::{Cursor, Read};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::forward_support::{SensorEncoder, VecSink, good_line, id_of};
use crate::spool_support::TempDir;
use avro_edge::forwarder;
use avro_edge::forwarder::Config;

/// 300 lines, then blocks like an idle pipe.
struct IdlePipe(Cursor<Vec<u8>>);
impl Read for IdlePipe {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(b)? {
            0 => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            n => Ok(n),
        }
    }
}

#[test]
fn sigterm_stops_input_drains_and_returns() {
    let dir = TempDir::new("fwd-signal");
    let flags: Vec<(String, String)> = vec![
        ("spool.dir".into(), dir.join("spool").display().to_string()),
        (
            "dead_letter".into(),
            dir.join("dl.ndjson").display().to_string(),
        ),
        ("spool.fsync".into(), "never".into()),
    ];
    let cfg = Config::load(None, Vec::new(), &flags).unwrap();
    let text: String = (0..300u64).map(|i| good_line(i) + "\n").collect();
    let stdin = Box::new(std::io::BufReader::new(IdlePipe(Cursor::new(
        text.into_bytes(),
    ))));
    let stop = forwarder::stop_on_signals().unwrap();
    let sink = VecSink::default();
    let s2 = sink.clone();
    let stop2 = stop.clone();
    let killer = std::thread::spawn(move || {
        while s2.delivered().len() < 300 {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!stop2.load(Ordering::SeqCst));
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    });
    let snap = forwarder::run(&cfg, SensorEncoder, sink.clone(), stdin, stop.clone()).unwrap();
    killer.join().unwrap();
    assert!(stop.load(Ordering::SeqCst), "the signal set the stop flag");
    let ids: Vec<u64> = sink.delivered().iter().map(|g| id_of(&g.value)).collect();
    assert_eq!(ids, (0..300).collect::<Vec<_>>());
    assert_eq!((snap.acked, snap.spool_records), (300, 0));
}

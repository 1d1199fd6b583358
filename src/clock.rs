//! The forwarder's wall clock: "now" in ms since the epoch, and the build time as a lower bound for it.
//!
//! # Test hook (not in shipped builds)
//! Only in builds with `cfg(test)` or the `_test` feature (the dev-only test kit turns it on; a
//! release `cargo build` does not), [`now_ms`] honours a faked clock so that tests can run the real
//! binary "in 1970":
//! - `AVRO_EDGE_FAKE_NOW_FILE=<path>`: the file holds ms since the epoch; it is read on every call,
//!   so a running process follows when the test rewrites it. A missing or unreadable file falls
//!   through to the next source.
//! - `AVRO_EDGE_FAKE_NOW_MS=<ms>`: a fixed time.
//!
//! The spool stamps its records with the real system clock (`spool::now_ms`) either way.

/// The build time (ms since the epoch) embedded by `build.rs`: `SOURCE_DATE_EPOCH`, else the time
/// the build script last ran. Nothing running this binary can be earlier.
pub const BUILD_TIME_MS: u64 = parse_u64(env!("AVRO_EDGE_BUILD_TIME_S")).saturating_mul(1000);

/// The environment variable naming the fake-clock file (test builds only).
#[cfg(any(test, feature = "_test"))]
pub const FAKE_NOW_FILE_ENV: &str = "AVRO_EDGE_FAKE_NOW_FILE";
/// The environment variable holding a fixed fake time in ms (test builds only).
#[cfg(any(test, feature = "_test"))]
pub const FAKE_NOW_MS_ENV: &str = "AVRO_EDGE_FAKE_NOW_MS";

/// Milliseconds since the Unix epoch from the system clock (or the fake clock, in test builds).
pub fn now_ms() -> u64 {
    #[cfg(any(test, feature = "_test"))]
    if let Some(ms) = fake_now_ms() {
        return ms;
    }
    crate::spool::now_ms()
}

/// The fake clock, when one is set.
#[cfg(any(test, feature = "_test"))]
fn fake_now_ms() -> Option<u64> {
    if let Some(path) = std::env::var_os(FAKE_NOW_FILE_ENV)
        && let Ok(text) = std::fs::read_to_string(path)
        && let Ok(ms) = text.trim().parse::<u64>()
    {
        return Some(ms);
    }
    std::env::var(FAKE_NOW_MS_ENV).ok()?.trim().parse().ok()
}

/// Decimal digits to a number at compile time (0 for anything else).
const fn parse_u64(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v: u64 = 0;
    while i < b.len() {
        let d = b[i];
        if !d.is_ascii_digit() {
            return 0;
        }
        v = v.saturating_mul(10).saturating_add((d - b'0') as u64);
        i += 1;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_time_is_embedded_and_in_the_past() {
        let built = std::hint::black_box(BUILD_TIME_MS);
        // 2025-01-01: the project is younger than that.
        assert!(built > 1_735_689_600_000, "{built}");
        assert!(built <= crate::spool::now_ms());
    }

    #[test]
    fn parse_u64_reads_digits_only() {
        assert_eq!(parse_u64("1764028800"), 1_764_028_800);
        assert_eq!(parse_u64(""), 0);
        assert_eq!(parse_u64("12x"), 0);
    }
}

//! Reading one response frame off a broker connection: the length prefix, the size cap, and only
//! the bytes that really arrive, so a lying or broken broker costs no more memory than it sends.
//!
//! Must not interpret the frame (correlation ids and bodies are [`super::conn`]'s job) and must
//! not allocate from the length prefix alone.

use smol::io::{AsyncRead, AsyncReadExt};

/// Bytes reserved up front for a frame; the rest grows with the bytes that arrive.
const FIRST_RESERVE: usize = 64 * 1024;

/// Why a connection's reader stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The peer went away (end of stream or an I/O error, a frame cut short included): a
    /// broker restarting does this, so it is retriable (`disconnected`).
    Closed(String),
    /// The peer sent what no Kafka broker sends (a frame length below a header or over the cap,
    /// an answer to a request never sent): not retriable (`protocol-error`).
    Broken(String),
}

/// One response frame (correlation id first, so at least 4 bytes), at most `max_frame` bytes.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_frame: usize,
) -> Result<Vec<u8>, Stop> {
    let mut len = [0u8; 4];
    if let Err(e) = reader.read_exact(&mut len).await {
        return Err(Stop::Closed(format!("read: {e}")));
    }
    let len = i32::from_be_bytes(len);
    if len < 4 {
        return Err(Stop::Broken(format!(
            "frame length {len}, shorter than a response header"
        )));
    }
    if len as usize > max_frame {
        return Err(Stop::Broken(format!(
            "response frame of {len} bytes over the {max_frame}-byte cap"
        )));
    }
    let mut body = Vec::with_capacity((len as usize).min(FIRST_RESERVE));
    match reader.take(len as u64).read_to_end(&mut body).await {
        Ok(n) if n == len as usize => {}
        Ok(n) => {
            return Err(Stop::Closed(format!(
                "read: connection closed after {n} of {len} frame bytes"
            )));
        }
        Err(e) => return Err(Stop::Closed(format!("read: {e}"))),
    }
    // The doubling left up to half of it unused, and a consumer may keep a Fetch answer (its
    // records are slices of it) until the last record is polled: give the rest back.
    if body.capacity() - body.len() > body.len() / 8 {
        body.shrink_to_fit();
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], max: usize) -> Result<Vec<u8>, Stop> {
        let mut r = bytes;
        smol::block_on(read_frame(&mut r, max))
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn whole_frame_is_returned() {
        assert_eq!(
            read(&framed(&[0, 0, 0, 7, 1, 2]), 100),
            Ok(vec![0, 0, 0, 7, 1, 2])
        );
    }

    #[test]
    fn lengths_below_a_header_or_over_the_cap_are_broken() {
        for len in [i32::MIN, -1, 0, 3] {
            let got = read(&len.to_be_bytes(), 100);
            assert!(matches!(got, Err(Stop::Broken(_))), "{len}: {got:?}");
        }
        let got = read(&framed(&[0; 101]), 100);
        assert!(
            matches!(&got, Err(Stop::Broken(m)) if m.contains("over the 100-byte cap")),
            "{got:?}"
        );
        // A 2 GB claim followed by nothing: refused before a byte of it is reserved.
        let got = read(&i32::MAX.to_be_bytes(), 100 * 1024 * 1024);
        assert!(matches!(got, Err(Stop::Broken(_))), "{got:?}");
    }

    #[test]
    fn frame_cut_short_or_missing_is_closed() {
        let mut f = framed(&[0; 10]);
        f.truncate(9);
        let got = read(&f, 100);
        assert_eq!(
            got,
            Err(Stop::Closed(
                "read: connection closed after 5 of 10 frame bytes".into()
            ))
        );
        assert!(matches!(read(&[0, 0], 100), Err(Stop::Closed(_))));
        assert!(matches!(read(&[], 100), Err(Stop::Closed(_))));
        // A length under the cap that never arrives: only what arrived is held.
        let mut f = (50_000_000i32).to_be_bytes().to_vec();
        f.extend([1, 2, 3, 4]);
        assert!(matches!(read(&f, 100 * 1024 * 1024), Err(Stop::Closed(_))));
    }
}

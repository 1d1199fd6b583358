//! The acknowledged cursor file: which sequence numbers the broker has acknowledged, and how far the sender
//! has read (so a restart can count the records it resends as possible duplicates).
//!
//! Must not hold anything else. Written atomically (temporary file + rename); a missing or corrupt cursor
//! file is never fatal: the spool then resends everything it still holds (at-least-once).

use std::fs;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"AECURS01";
pub const FILE: &str = "cursor";
const TMP: &str = "cursor.tmp";

/// The persisted cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every sequence number below this one was acknowledged (or dropped).
    pub acked: u64,
    /// Every sequence number below this one was handed to the sender at least once.
    pub sent: u64,
}

/// Read the cursor; `None` when the file is missing or does not pass its check.
pub fn read(dir: &Path) -> Option<Cursor> {
    let b = fs::read(dir.join(FILE)).ok()?;
    if b.len() != 28 || b.get(..8)? != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b.get(24..28)?.try_into().ok()?);
    if crc32c::crc32c(b.get(..24)?) != crc {
        return None;
    }
    Some(Cursor {
        acked: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
        sent: u64::from_le_bytes(b.get(16..24)?.try_into().ok()?),
    })
}

/// Write the cursor atomically; with `sync`, the file and the directory are fsynced.
pub fn write(dir: &Path, c: Cursor, sync: bool) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&c.acked.to_le_bytes());
    b.extend_from_slice(&c.sent.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(TMP);
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&b)?;
    if sync {
        f.sync_data()?;
    }
    fs::rename(&tmp, dir.join(FILE))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsync a directory so that a created, renamed or deleted entry survives power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

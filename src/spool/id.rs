//! The spool's identity: a random id written into the directory (file `id`) the first time it is
//! opened, read back ever after. The forwarder names what it sends after it (the
//! `avro-edge-gateway` header, the exactly-once position and transactional id), so a record's
//! (id, sequence number) is unique, and a copy of the directory is the same source.
//!
//! Must not change an id once written, nor invent a new one for an unreadable file (that would
//! make the same records look like another gateway's): an unreadable id is an error.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::{SpoolError, cursor, io};

/// The id file in a spool directory.
pub const FILE: &str = "id";
const TMP: &str = "id.tmp";

/// Whether `id` is a usable id: 1 to 128 of `a-z A-Z 0-9 . _ -`.
pub fn valid(id: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !id.is_empty() && id.len() <= 128 && id.chars().all(ok)
}

/// The directory's id; created (durably: temporary file, fsync, rename, directory fsync) when
/// there is none, unless `read_only` (then `""`).
pub(super) fn load_or_create(dir: &Path, read_only: bool) -> Result<String, SpoolError> {
    let path = dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if valid(id) {
                return Ok(id.to_string());
            }
            Err(io("read id", &path)(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a spool id (1 to 128 of a-z, A-Z, 0-9, '.', '_', '-'); \
                 restore it, or remove it to give the spool a new identity",
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if read_only {
                return Ok(String::new());
            }
            let id = new_id().map_err(io("create id", &path))?;
            let tmp = dir.join(TMP);
            let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
            f.write_all(format!("{id}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("write", &tmp))?;
            fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
            cursor::sync_dir(dir).map_err(io("fsync", dir))?;
            tracing::info!(dir = %dir.display(), id, "spool id created");
            Ok(id)
        }
        Err(e) => Err(io("read id", &path)(e)),
    }
}

/// 128 random bits from the OS, as 32 hex digits.
fn new_id() -> std::io::Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("avro-edge-id-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_id_is_created_once_and_kept() {
        let dir = tmpdir("keep");
        assert_eq!(
            load_or_create(&dir, true).unwrap(),
            "",
            "inspecting creates nothing"
        );
        assert!(!dir.join(FILE).exists());
        let id = load_or_create(&dir, false).unwrap();
        assert_eq!(id.len(), 32);
        assert!(valid(&id));
        assert_eq!(load_or_create(&dir, false).unwrap(), id);
        assert_eq!(load_or_create(&dir, true).unwrap(), id);
        let other = tmpdir("other");
        assert_ne!(load_or_create(&other, false).unwrap(), id);
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&other);
    }

    #[test]
    fn an_unreadable_id_is_an_error_not_a_new_identity() {
        let dir = tmpdir("bad");
        fs::write(dir.join(FILE), "not an id!\n").unwrap();
        let e = load_or_create(&dir, false).unwrap_err();
        assert!(e.to_string().contains("not a spool id"), "{e}");
        assert_eq!(fs::read_to_string(dir.join(FILE)).unwrap(), "not an id!\n");
        for ok in ["gw-7", "a.b_c-D", &"x".repeat(128)] {
            assert!(valid(ok), "{ok}");
        }
        for bad in ["", "a b", "é", &"x".repeat(129)] {
            assert!(!valid(bad), "{bad}");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

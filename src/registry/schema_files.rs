//! Which `.avsc` files a directory holds and the subject each registers under, for
//! `avro-edge schemas push` (and the same rule the test registry's `--preload` uses).
//!
//! Must not talk to a registry or parse schemas: it only names and orders files.

use std::path::{Path, PathBuf};

/// The subject a schema file registers under: `sensor-data.avsc` → `sensor-data-value`, and a
/// `-v<N>` suffix names version N of the same subject: `sensor-data-v2.avsc` → `sensor-data-value`.
/// Returns `(base name, version)`.
pub fn file_subject_base(file: &Path) -> Option<(String, u32)> {
    let stem = file.file_stem()?.to_str()?;
    if let Some((base, v)) = stem.rsplit_once("-v")
        && let Ok(n) = v.parse::<u32>()
        && !base.is_empty()
    {
        return Some((base.to_string(), n));
    }
    Some((stem.to_string(), 1))
}

/// `<base>-value` for a schema file: `sensor-data.avsc` and `sensor-data-v2.avsc` → `sensor-data-value`.
pub fn subject_for_file(file: &Path) -> Option<String> {
    file_subject_base(file).map(|(b, _)| format!("{b}-value"))
}

/// `.avsc` files under `path` (or `path` itself), ordered by (base name, version), with their subjects.
pub fn avsc_files(path: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in rd {
            let p = entry
                .map_err(|e| format!("{}: {e}", path.display()))?
                .path();
            if p.extension().and_then(|e| e.to_str()) == Some("avsc") && p.is_file() {
                files.push(p);
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    let mut keyed = Vec::new();
    for f in files {
        let (base, v) = file_subject_base(&f)
            .ok_or_else(|| format!("{}: not a schema file name", f.display()))?;
        keyed.push(((base.clone(), v), (format!("{base}-value"), f)));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, x)| x).collect())
}

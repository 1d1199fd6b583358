//! Names: the setting a name stands for (a key, or one of its librdkafka / Java aliases, from
//! [`SETTINGS`]), the environment variable of a name, and the closest known name to a misspelt one.
//!
//! Must not read values: it only names settings.

use super::table::{Command, SETTINGS, Setting};

/// `AVRO_EDGE_*` variables that are not configuration keys although their names look like one.
const NOT_CONFIG_ENV: &[&str] = &["AVRO_EDGE_REGISTRY_TOKEN"];

/// Environment prefixes owned by configuration sections: an unknown variable under one is an error.
const SECTION_ENV_PREFIXES: &[&str] = &[
    "AVRO_EDGE_INPUT_",
    "AVRO_EDGE_KAFKA_",
    "AVRO_EDGE_REGISTRY_",
    "AVRO_EDGE_SPOOL_",
    "AVRO_EDGE_METRICS_",
    "AVRO_EDGE_FORWARD_",
];

/// The environment variable for a key (or an alias).
pub fn env_name(key: &str) -> String {
    format!("AVRO_EDGE_{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// Every accepted name: the keys, then the aliases (full names: `kafka.linger.ms`).
fn names() -> impl Iterator<Item = String> {
    SETTINGS
        .iter()
        .map(|s| s.key.to_string())
        .chain(SETTINGS.iter().flat_map(Setting::full_aliases))
}

/// The setting a name (a key or an alias) stands for.
pub(super) fn resolve(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == name).or_else(|| {
        SETTINGS
            .iter()
            .find(|s| s.full_aliases().any(|a| a == name))
    })
}

/// What an environment variable is for.
pub(super) enum EnvVar {
    /// A key or alias (the name it matched).
    Key(String),
    /// Under a section's prefix but no known key.
    Unknown,
    /// Not a configuration variable.
    Other,
}

pub(super) fn env_var(var: &str) -> EnvVar {
    if let Some(name) = names().find(|n| env_name(n) == var) {
        return EnvVar::Key(name);
    }
    if SECTION_ENV_PREFIXES.iter().any(|p| var.starts_with(p)) && !NOT_CONFIG_ENV.contains(&var) {
        return EnvVar::Unknown;
    }
    EnvVar::Other
}

/// The names `command` uses: the keys and aliases of its settings.
fn names_for(command: Command) -> impl Iterator<Item = String> {
    names().filter(move |n| resolve(n).is_some_and(|s| s.used_by(command)))
}

/// The closest name `command` uses to a misspelt one (edit distance over its keys and aliases), if
/// close enough: a suggestion never names a setting the command would refuse.
pub(super) fn closest(name: &str, command: Command) -> Option<String> {
    let in_kafka = format!("kafka.{name}");
    if resolve(&in_kafka).is_some_and(|s| s.used_by(command)) {
        return Some(in_kafka);
    }
    closest_in(name, names_for(command))
}

/// The closest environment variable `command` uses to an unknown one.
pub(super) fn closest_env(var: &str, command: Command) -> Option<String> {
    closest_in(var, names_for(command).map(|n| env_name(&n)))
}

/// The closest candidate within a third of the name's length (at least 3 edits).
pub(super) fn closest_in(name: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(3);
    candidates
        .map(|c| (edit_distance(name, &c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_name_their_keys_and_env_names_are_unambiguous() {
        for s in SETTINGS {
            for alias in s.full_aliases() {
                assert_eq!(resolve(&alias).map(|r| r.key), Some(s.key), "{alias}");
            }
        }
        // Two names with one environment variable must mean the same key.
        for a in names() {
            for b in names() {
                if env_name(&a) == env_name(&b) {
                    assert_eq!(resolve(&a), resolve(&b), "{a} / {b}");
                }
            }
        }
    }

    #[test]
    fn closest_names() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let forward = Command::Forward;
        assert_eq!(
            closest("kafka.linger", forward).as_deref(),
            Some("kafka.linger_ms")
        );
        assert_eq!(
            closest("bootstrap.servers", forward).as_deref(),
            Some("kafka.bootstrap.servers")
        );
        assert_eq!(closest("kafka.zzzzzzzzzzzzzzzzzzz", forward), None);
        // Only names the command uses: consume has no linger.
        assert_eq!(closest("kafka.linger", Command::Consume), None);
        assert_eq!(
            closest("kafka.max_poll_record", Command::Consume).as_deref(),
            Some("kafka.max_poll_records")
        );
        assert_ne!(
            closest("kafka.max_poll_record", forward).as_deref(),
            Some("kafka.max_poll_records")
        );
    }
}

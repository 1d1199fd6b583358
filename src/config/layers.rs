//! The three layers of settings (file, environment, flags), each gathered into dotted keys with the
//! aliases resolved, unknown names refused (with the closest name the command uses), a key the command
//! does not use refused (naming the commands that do), and a key given twice under two names with two
//! values refused; then merged, a later layer winning key by key.
//!
//! Must not judge values: `validate` does.

use std::collections::HashMap;
use std::path::Path;

use toml::{Table, Value};

use super::keys::{self, EnvVar};
use super::table::{Command, Setting};
use super::{ConfigError, invalid};

/// Settings gathered from one layer (file, env or flags) before validation.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    /// The command these settings are for: it must use every key given.
    command: Command,
    /// Dotted key → value, for every key but the file's `[[input]]` list.
    pub(super) values: Table,
    pub(super) inputs: Option<Vec<Value>>,
    /// Dotted key → the name it was given under in this layer (a key, an alias, a variable).
    given_as: HashMap<String, String>,
}

impl Layer {
    /// An empty layer of settings for `command`.
    pub(super) fn new(command: Command) -> Layer {
        Layer {
            command,
            values: Table::new(),
            inputs: None,
            given_as: HashMap::new(),
        }
    }

    /// Set `name` (a key or an alias; `shown` is how the user wrote it) to `value`.
    fn set(
        &mut self,
        name: &str,
        shown: &str,
        value: Value,
        origin: &str,
    ) -> Result<(), ConfigError> {
        let setting = keys::resolve(name).ok_or_else(|| ConfigError::UnknownKey {
            key: shown.to_string(),
            origin: origin.to_string(),
            suggestion: keys::closest(name, self.command),
        })?;
        if !setting.used_by(self.command) {
            return Err(not_used(setting, shown, origin, self.command));
        }
        let key = setting.key;
        if let Some(before) = self.given_as.get(key)
            && before != shown
            && self.values.get(key).is_some_and(|v| !same(v, &value))
        {
            return Err(invalid(
                key,
                format!(
                    "set twice with different values, as '{before}' and as '{shown}' (from {origin})"
                ),
            ));
        }
        self.given_as.insert(key.to_string(), shown.to_string());
        self.values.insert(key.to_string(), value);
        Ok(())
    }

    /// This layer over `self`: its keys win; its `[[input]]` list, if any, too.
    pub(super) fn overlay(mut self, top: Layer) -> Layer {
        self.values.extend(top.values);
        if top.inputs.is_some() {
            self.inputs = top.inputs;
        }
        self
    }
}

/// `shown` (standing for `setting`) given to a command that does not use it: an error naming the
/// commands that do.
fn not_used(setting: &Setting, shown: &str, origin: &str, command: Command) -> ConfigError {
    let users: Vec<&str> = setting.used_by.iter().map(|c| c.name()).collect();
    let users = match users.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "no command".to_string(),
    };
    invalid(
        shown,
        format!("not used by {command}, only by {users} (from {origin})"),
    )
}

/// The same setting: equal, or a list and the comma-separated string of the same items.
fn same(a: &Value, b: &Value) -> bool {
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => s.trim().to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => format!("{other:?}"),
        }
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.split(',').map(str::trim).collect::<Vec<_>>().join(","),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        other => scalar(other),
    };
    a == b || text(a) == text(b)
}

/// The TOML file. Tables inside a section are flattened to dotted names, so librdkafka properties
/// pasted under `[kafka]` (`bootstrap.servers = "..."`, which TOML reads as nested tables) are found.
pub(super) fn file(path: &Path, command: Command) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
    let mut layer = Layer::new(command);
    let origin = path.display().to_string();
    for (k, v) in table {
        match (k.as_str(), v) {
            ("input", Value::Array(a)) => layer.inputs = Some(a),
            ("input", _) => return Err(invalid("input", "must be an array of tables ([[input]])")),
            (_, v) => flatten(&mut layer, &k, v, &origin)?,
        }
    }
    Ok(layer)
}

fn flatten(layer: &mut Layer, name: &str, v: Value, origin: &str) -> Result<(), ConfigError> {
    match v {
        Value::Table(t) => {
            for (k, v) in t {
                flatten(layer, &format!("{name}.{k}"), v, origin)?;
            }
            Ok(())
        }
        v => layer.set(name, name, v, origin),
    }
}

/// `AVRO_EDGE_*` variables. `AVRO_EDGE_BROKERS` (shared with `produce`/`consume`) is taken as
/// `kafka.brokers` when no other name sets it. A variable under a section's prefix
/// (`AVRO_EDGE_KAFKA_`, `_SPOOL_`, ...) that names no key is an error.
pub(super) fn env(
    vars: impl IntoIterator<Item = (String, String)>,
    command: Command,
) -> Result<Layer, ConfigError> {
    let origin = "environment";
    let mut layer = Layer::new(command);
    let mut brokers = None;
    for (var, value) in vars {
        match keys::env_var(&var) {
            EnvVar::Key(name) => layer.set(&name, &var, Value::String(value), origin)?,
            EnvVar::Unknown => {
                return Err(ConfigError::UnknownKey {
                    suggestion: keys::closest_env(&var, command),
                    key: var,
                    origin: origin.into(),
                });
            }
            EnvVar::Other if var == "AVRO_EDGE_BROKERS" => brokers = Some(value),
            EnvVar::Other => {}
        }
    }
    if let Some(b) = brokers
        && !layer.values.contains_key("kafka.brokers")
    {
        layer
            .values
            .insert("kafka.brokers".into(), Value::String(b));
    }
    Ok(layer)
}

/// `(key, value)` pairs from flags (named flags, `--set`, `-X`): keys or aliases, dotted.
pub(super) fn flags(pairs: &[(String, String)], command: Command) -> Result<Layer, ConfigError> {
    let mut layer = Layer::new(command);
    for (k, v) in pairs {
        layer.set(k, k, Value::String(v.clone()), "flags")?;
    }
    Ok(layer)
}

/// Secrets given as a file (`kafka.sasl_password_file`): read into their key
/// (`kafka.sasl_password`), one trailing newline dropped, so the secret itself is never on a
/// command line. Given together with the key itself (after merging) is an error. The errors name
/// the file, never its content.
pub(super) fn read_secret_files(values: &mut Table) -> Result<(), ConfigError> {
    const FILE: &str = "kafka.sasl_password_file";
    const KEY: &str = "kafka.sasl_password";
    let Some(v) = values.remove(FILE) else {
        return Ok(());
    };
    let Value::String(path) = v else {
        return Err(invalid(FILE, "expected a file name"));
    };
    if values.contains_key(KEY) {
        return Err(invalid(
            FILE,
            format!("set together with {KEY}: give one of them"),
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid(FILE, format!("cannot read {path}: {e}")))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(invalid(FILE, format!("{path} is empty")));
    }
    values.insert(KEY.to_string(), Value::String(secret.to_string()));
    Ok(())
}

//! The one trait every error enum in the crate implements: a stable, machine-readable kind name,
//! and [`KINDS`], the one table of every kind the crate can report.
//!
//! Kind names are part of the public interface (the CLI prints `error[<kind>]: <message>`,
//! the dead-letter file records them), so they never change once released. This module holds
//! no error types of its own: each module owns its enum. An error that carries another layer's
//! error (e.g. `KafkaError::Batch`) reports the inner error's kind, so the kind survives to the
//! CLI line and the dead-letter file.

/// A stable kebab-case name for each failure, e.g. `truncated-body` or `broker-unreachable`.
pub trait ErrorKind: std::error::Error {
    /// The kind name; one of [`KINDS`].
    fn kind(&self) -> &'static str;
}

/// Every kind the crate reports (any `kind()`, the registry's error codes, the CLI's own
/// failures, the forwarder's dead-letter reasons), with its meaning in one line. README.md's
/// "Error kinds" table is this table; tests check both against the source.
pub const KINDS: &[(&str, &str)] = &[
    // The Confluent wire frame (`wire`).
    (
        "truncated-header",
        "message shorter than the 5-byte frame header (magic byte + schema id)",
    ),
    (
        "invalid-magic-byte",
        "message does not start with the 0x00 magic byte",
    ),
    // Avro decoding and encoding (`codec`).
    (
        "unknown-schema-id",
        "schema id unknown to the registry or the offline cache",
    ),
    ("invalid-schema", "schema text is not a valid Avro schema"),
    ("invalid-schema-json", "schema text is not JSON"),
    (
        "incompatible-schema",
        "reader and writer schemas cannot be resolved, or the registry refused the schema as incompatible",
    ),
    ("truncated-body", "Avro body ends early"),
    ("trailing-bytes", "bytes left over after the record"),
    (
        "varint-overflow",
        "varint longer than 10 bytes or over 64 bits",
    ),
    (
        "int-out-of-range",
        "value does not fit the Avro int (or the Rust integer) it goes into",
    ),
    ("negative-length", "negative byte, string or block length"),
    ("invalid-utf8", "string is not valid UTF-8"),
    ("invalid-union-index", "union branch index out of range"),
    ("invalid-enum-index", "enum symbol index out of range"),
    ("invalid-boolean", "boolean byte other than 0 or 1"),
    (
        "too-many-items",
        "block count of zero-size items over the limit",
    ),
    ("nesting-too-deep", "value nested deeper than the limit"),
    ("not-json", "input is not JSON"),
    (
        "missing-field",
        "record field missing and it has no default",
    ),
    ("wrong-type", "JSON value of the wrong type for the schema"),
    ("unknown-enum-symbol", "enum symbol not in the schema"),
    ("unknown-field", "record field not in the schema"),
    (
        "unresolvable",
        "writer data cannot be resolved to the reader schema",
    ),
    ("type-mismatch", "record does not match the Rust type"),
    (
        "schema-mismatch",
        "schema does not match the Rust record type",
    ),
    // The schema registry (`registry`): error codes, then client failures.
    ("unknown-subject", "no such subject (registry code 40401)"),
    ("unknown-version", "no such schema version (40402)"),
    ("subject-soft-deleted", "subject was soft-deleted (40404)"),
    (
        "subject-not-soft-deleted",
        "subject must be soft-deleted first (40405)",
    ),
    ("version-soft-deleted", "version was soft-deleted (40406)"),
    (
        "version-not-soft-deleted",
        "version must be soft-deleted first (40407)",
    ),
    (
        "no-subject-config",
        "subject has no compatibility configuration (40408)",
    ),
    ("not-found", "registry route not found (HTTP 404)"),
    ("invalid-version", "invalid schema version (42202)"),
    (
        "invalid-compatibility-level",
        "invalid compatibility level (42203)",
    ),
    (
        "unprocessable-request",
        "registry could not process the request (422)",
    ),
    (
        "unauthorized",
        "registry credentials missing or wrong (401)",
    ),
    ("forbidden", "registry credentials not allowed this (403)"),
    (
        "registry-server-error",
        "registry failed internally (5xx, 5xxxx)",
    ),
    ("registry-error", "any other registry error code"),
    (
        "registry-unreachable",
        "no registry URL answered, and no cache could",
    ),
    (
        "schema-cache",
        "offline schema cache unreadable, unwritable or holding a bad file",
    ),
    (
        "schema-cache-conflict",
        "offline schema cache disagrees with the registry (not overwritten)",
    ),
    (
        "registry-protocol",
        "registry answer is not the documented response",
    ),
    ("registry-config", "bad registry client settings"),
    (
        "tls-error",
        "TLS setup or handshake failed (Kafka or registry)",
    ),
    // The spool (`spool`).
    ("spool-io", "spool file operation failed"),
    ("spool-locked", "spool directory in use by another process"),
    (
        "record-too-large",
        "record over the spool's or the producer's size limit",
    ),
    (
        "spool-interrupted",
        "spool stopped taking records (shutting down)",
    ),
    ("spool-options", "bad spool options"),
    // The forwarder (`forward`): start-up failures and dead-letter reasons.
    ("dead-letter-io", "dead-letter file cannot be written"),
    ("input-io", "input cannot be opened or read"),
    ("metrics-listen", "metrics listener cannot bind"),
    (
        "line-too-long",
        "input line longer than max_line_bytes (dead-lettered)",
    ),
    // The configuration (`config`).
    ("config-read", "config file cannot be read"),
    ("config-parse", "config file is not valid TOML"),
    ("config-unknown-key", "unknown config key"),
    ("config-invalid", "config value invalid"),
    ("config-missing", "required config key missing"),
    // Kafka (`kafka`).
    (
        "broker-unreachable",
        "no broker answered before the connect deadline",
    ),
    ("timeout", "request or operation ran past its deadline"),
    (
        "disconnected",
        "connection lost with a request in flight (it may have been applied)",
    ),
    ("kafka-error", "broker answered with a Kafka error code"),
    (
        "message-too-large",
        "broker refused a record larger than the topic's max.message.bytes (not retried)",
    ),
    (
        "invalid-record",
        "broker refused a record as invalid (INVALID_RECORD, e.g. a compacted topic without key)",
    ),
    (
        "invalid-timestamp",
        "broker refused a record whose timestamp is outside the topic's accepted range",
    ),
    (
        "topic-authorization-failed",
        "the broker does not allow this client the topic",
    ),
    (
        "fenced-instance-id",
        "another consumer joined the group with this consumer's group.instance.id (FENCED_INSTANCE_ID)",
    ),
    (
        "protocol-error",
        "Kafka frame could not be encoded or decoded, or the answer breaks the protocol",
    ),
    (
        "unsupported-version",
        "broker does not speak a version of an API we need",
    ),
    (
        "auth-failed",
        "SASL authentication failed: wrong password (with PLAIN also an unknown user), or a broken exchange",
    ),
    (
        "sasl-unknown-user",
        "SCRAM: the broker has no credentials for this user and mechanism",
    ),
    (
        "sasl-mechanism-refused",
        "the broker's listener does not enable the SASL mechanism",
    ),
    (
        "tls-untrusted-broker",
        "the broker's TLS certificate is not trusted (another CA, another name, expired)",
    ),
    (
        "tls-client-certificate",
        "the broker requires a TLS client certificate and got none, or refused ours",
    ),
    ("unknown-topic", "topic does not exist or has no partitions"),
    ("invalid-config", "invalid Kafka client configuration"),
    ("closed", "producer or consumer already closed"),
    (
        "behind-refused",
        "not stored: an earlier batch of the partition was refused; send again after its records",
    ),
    (
        "corrupt-record-batch",
        "fetched record batch fails its checks (CRC, lengths)",
    ),
    (
        "unsupported-record-format",
        "fetched record batch uses a format or codec avro-edge does not read",
    ),
    (
        "record-batch-too-large",
        "fetched record batch decompresses past the limit",
    ),
    (
        "bad-group-metadata",
        "consumer-group subscription or assignment bytes unreadable",
    ),
    // The command line's own failures (`cli`).
    (
        "io",
        "reading the input or writing the output failed (encode, decode, schemas)",
    ),
    (
        "io-error",
        "reading the input or writing the output failed (consume)",
    ),
    ("stdin", "reading stdin failed (produce)"),
    ("stdout", "writing stdout failed (spool status)"),
    (
        "records-failed",
        "some records were not delivered (produce)",
    ),
    (
        "signal-setup",
        "SIGINT/SIGTERM handlers cannot be installed",
    ),
    ("schema-files", "schema directory or .avsc file unreadable"),
    (
        "feature-missing",
        "command needs a feature this binary was built without",
    ),
    ("listen", "test registry cannot bind its address"),
    ("preload", "test registry preload file unreadable"),
    (
        "usage",
        "command line not understood: unknown command or flag, missing or invalid argument",
    ),
];

#[cfg(test)]
mod tests {
    //! [`KINDS`] against the source (every kind the code can report is in it, and every row is
    //! reported somewhere) and against README.md's "Error kinds" table.

    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::KINDS;

    /// A Rust token, as far as finding kinds needs: string literals, words and single punctuation.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Tok {
        Str(String),
        Word(String),
        Punct(char),
    }

    /// Split Rust source into tokens, dropping comments and char literals.
    fn lex(src: &str) -> Vec<Tok> {
        let c: Vec<char> = src.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < c.len() {
            let ch = c[i];
            if ch.is_whitespace() {
                i += 1;
            } else if ch == '/' && c.get(i + 1) == Some(&'/') {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            } else if ch == '/' && c.get(i + 1) == Some(&'*') {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            } else if ch == '"' {
                let mut s = String::new();
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        s.push(c[i]);
                        i += 1;
                    }
                    if i < c.len() {
                        s.push(c[i]);
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(s));
            } else if ch == 'r' && matches!(c.get(i + 1), Some('"' | '#')) {
                // Raw string r"..." or r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(Tok::Word("r".into()));
                    i += 1;
                    continue;
                }
                j += 1;
                let start = j;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                        break;
                    }
                    j += 1;
                }
                out.push(Tok::Str(c[start..j.min(c.len())].iter().collect()));
                i = j + 1 + hashes;
            } else if ch == '\'' {
                // A char literal ('x', '\n', '"') is skipped; a lifetime ('a) is a word.
                if c.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            } else if ch.is_alphanumeric() || ch == '_' {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Word(c[start..i].iter().collect()));
            } else {
                out.push(Tok::Punct(ch));
                i += 1;
            }
        }
        out
    }

    fn word(t: &Tok, w: &str) -> bool {
        matches!(t, Tok::Word(x) if x == w)
    }

    fn punct(t: &Tok, p: char) -> bool {
        *t == Tok::Punct(p)
    }

    /// The index just past the bracket group opening at `open` (`(`, `[` or `{`).
    fn close_of(toks: &[Tok], open: usize) -> usize {
        let mut depth = 0i32;
        for (i, t) in toks.iter().enumerate().skip(open) {
            match t {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        toks.len()
    }

    /// The tokens without `#[cfg(test)]` items (test modules and test-only impls hold examples,
    /// not kinds the crate reports).
    fn without_tests(toks: Vec<Tok>) -> Vec<Tok> {
        let cfg_test = [
            Tok::Punct('#'),
            Tok::Punct('['),
            Tok::Word("cfg".into()),
            Tok::Punct('('),
            Tok::Word("test".into()),
            Tok::Punct(')'),
            Tok::Punct(']'),
        ];
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            if toks[i..].starts_with(&cfg_test) {
                // Skip to the item's end: its first `;` or its first brace group.
                let mut j = i + cfg_test.len();
                while j < toks.len() && !punct(&toks[j], ';') && !punct(&toks[j], '{') {
                    j += 1;
                }
                i = if j < toks.len() && punct(&toks[j], '{') {
                    close_of(&toks, j)
                } else {
                    j + 1
                };
            } else {
                out.push(toks[i].clone());
                i += 1;
            }
        }
        out
    }

    /// The top-level arguments of the call whose `(` is at `open`.
    fn args(toks: &[Tok], open: usize) -> Vec<&[Tok]> {
        let end = close_of(toks, open) - 1;
        let mut out = Vec::new();
        let (mut depth, mut start) = (0i32, open + 1);
        for (i, t) in toks.iter().enumerate().take(end).skip(open + 1) {
            match t {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => depth -= 1,
                Tok::Punct(',') if depth == 0 => {
                    out.push(&toks[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < end {
            out.push(&toks[start..end]);
        }
        out
    }

    /// Where kinds come from, besides `fn kind(&self)` bodies: a function whose whole body is a
    /// kind table (`kind_of_code`), and calls that take a kind as a literal argument
    /// (path, argument index).
    const KIND_FUNCTIONS: &[&str] = &["kind", "kind_of_code"];
    const KIND_ARGUMENTS: &[(&[&str], usize)] = &[
        // The CLI's failures with no library error behind them.
        (&["Failure", ":", ":", "other"], 1),
        // The forwarder's dead-letter reasons and last-error metric.
        (&[".", "reject"], 3),
        (&[".", "set_error"], 0),
    ];

    fn matches_path(toks: &[Tok], at: usize, path: &[&str]) -> bool {
        path.len() <= toks.len() - at
            && path.iter().zip(&toks[at..]).all(|(p, t)| match t {
                Tok::Word(w) => w == p,
                Tok::Punct(c) => p.len() == 1 && p.starts_with(*c),
                Tok::Str(_) => false,
            })
    }

    /// Every kind literal the source at `toks` can report.
    fn kinds_in(toks: &[Tok]) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..toks.len() {
            // fn NAME ( ... ) ... { body }
            if word(&toks[i], "fn")
                && let Some(Tok::Word(name)) = toks.get(i + 1)
                && KIND_FUNCTIONS.contains(&name.as_str())
            {
                // A declaration without a body (`;` first) reports nothing.
                let Some(open) = (i..toks.len())
                    .find(|&j| punct(&toks[j], '{') || punct(&toks[j], ';'))
                    .filter(|&j| punct(&toks[j], '{'))
                else {
                    continue;
                };
                for t in &toks[open..close_of(toks, open)] {
                    if let Tok::Str(s) = t {
                        out.push(s.clone());
                    }
                }
            }
            for (path, index) in KIND_ARGUMENTS {
                let open = i + path.len();
                if matches_path(toks, i, path)
                    && toks.get(open).is_some_and(|t| punct(t, '('))
                    && let Some([Tok::Str(s)]) = args(toks, open).get(*index)
                {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// (kind, file) for every kind the crate's source can report.
    fn kinds_in_source() -> Vec<(String, String)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        let mut out = Vec::new();
        for f in files {
            if f.ends_with("src/error.rs") {
                continue; // the table itself
            }
            let toks = without_tests(lex(&std::fs::read_to_string(&f).unwrap()));
            let name = f.strip_prefix(&src).unwrap().display().to_string();
            out.extend(kinds_in(&toks).into_iter().map(|k| (k, name.clone())));
        }
        out
    }

    fn is_kebab(s: &str) -> bool {
        !s.is_empty()
            && s.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut seen = BTreeSet::new();
        for (kind, meaning) in KINDS {
            assert!(is_kebab(kind), "kind {kind:?} is not kebab-case");
            assert!(seen.insert(kind), "kind {kind} is in KINDS twice");
            assert!(
                !meaning.is_empty() && !meaning.contains('|') && !meaning.contains('\n'),
                "meaning of {kind} must be one line with no `|`: {meaning:?}"
            );
        }
    }

    #[test]
    fn the_scanner_finds_kinds_where_the_code_reports_them() {
        let toks = lex(r##"
            impl ErrorKind for E {
                fn kind(&self) -> &'static str {
                    match self { E::A => "a-kind", E::B(e) => e.kind(), /* "not-me" */ }
                }
            }
            fn f() { Failure::other(2, "cli-kind", format!("{}", "no")); x.reject(i, &b, false, "dl-kind", "msg"); }
            fn g() { let c = '"'; Failure::other(1, e.kind(), "m"); }
            #[cfg(test)]
            mod tests { fn kind(&self) -> &'static str { "test-only" } }
        "##);
        assert_eq!(
            kinds_in(&without_tests(toks)),
            ["a-kind", "cli-kind", "dl-kind"]
        );
    }

    #[test]
    fn every_kind_in_the_source_is_in_the_table_and_every_row_is_reported() {
        let table: BTreeSet<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        let found = kinds_in_source();
        let missing: Vec<String> = found
            .iter()
            .filter(|(k, _)| !table.contains(k.as_str()))
            .map(|(k, f)| format!("{k} (src/{f})"))
            .collect();
        assert!(
            missing.is_empty(),
            "kinds reported in the source but not in error::KINDS: {missing:?}"
        );
        let found: BTreeSet<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        let dead: Vec<&str> = table.difference(&found).copied().collect();
        assert!(
            dead.is_empty(),
            "rows of error::KINDS that nothing in src/ reports: {dead:?}"
        );
    }

    /// The README section, as generated from [`KINDS`].
    fn readme_table() -> String {
        let mut t = String::from("| kind | meaning |\n| --- | --- |\n");
        for (kind, meaning) in KINDS {
            t.push_str(&format!("| `{kind}` | {meaning} |\n"));
        }
        t
    }

    #[test]
    fn the_readme_lists_exactly_the_kinds_of_the_table() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        let section = readme
            .split("\n## Error kinds\n")
            .nth(1)
            .expect("README.md has a section `## Error kinds`");
        let section = section.split("\n## ").next().unwrap();
        let rows: Vec<(String, String)> = section
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(2) // header and separator
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                assert_eq!(cells.len(), 2, "README kinds row {l:?} must have two cells");
                (cells[0].trim_matches('`').to_string(), cells[1].to_string())
            })
            .collect();
        let want: Vec<(String, String)> = KINDS
            .iter()
            .map(|(k, m)| (k.to_string(), m.to_string()))
            .collect();
        let only_readme: Vec<&(String, String)> =
            rows.iter().filter(|r| !want.contains(r)).collect();
        let only_table: Vec<&(String, String)> =
            want.iter().filter(|r| !rows.contains(r)).collect();
        assert!(
            only_readme.is_empty() && only_table.is_empty() && rows == want,
            "README.md's `## Error kinds` table differs from error::KINDS\n\
             only in README: {only_readme:?}\nonly in KINDS: {only_table:?}\n\
             (order must match too). The table, generated from KINDS:\n\n{}",
            readme_table()
        );
    }
}

//! The connection-security flags shared by `produce`, `consume` and `forward`: each names one
//! `kafka.*` key (the same as `-X security.protocol=…` and friends).
//!
//! Must not take the SASL password itself: a flag's value shows in `ps` and shell history, so the
//! password comes from `--sasl-password-file`, `$AVRO_EDGE_KAFKA_SASL_PASSWORD` or the config file.

use std::path::PathBuf;

#[derive(Debug, Default, clap::Args)]
pub struct SecurityArgs {
    /// PLAINTEXT | SASL_PLAINTEXT | SSL | SASL_SSL (kafka.security_protocol; SSL ones need a
    /// build with --features tls).
    #[arg(long)]
    pub security_protocol: Option<String>,
    /// PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 (kafka.sasl_mechanism; default PLAIN).
    #[arg(long)]
    pub sasl_mechanism: Option<String>,
    /// SASL user (kafka.sasl_username).
    #[arg(long)]
    pub sasl_username: Option<String>,
    /// File holding the SASL password (kafka.sasl_password_file); or set
    /// $AVRO_EDGE_KAFKA_SASL_PASSWORD. There is no flag for the password itself.
    #[arg(long)]
    pub sasl_password_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust instead of the Mozilla roots (kafka.ssl_ca_location).
    #[arg(long)]
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificate (PEM, then its chain) for brokers that require one
    /// (kafka.ssl_certificate_location).
    #[arg(long)]
    pub ssl_certificate_location: Option<PathBuf>,
    /// The client certificate's unencrypted private key, PEM (kafka.ssl_key_location).
    #[arg(long)]
    pub ssl_key_location: Option<PathBuf>,
}

impl SecurityArgs {
    /// The flags given, as `(key, value)` configuration pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let named = [
            ("kafka.security_protocol", self.security_protocol.clone()),
            ("kafka.sasl_mechanism", self.sasl_mechanism.clone()),
            ("kafka.sasl_username", self.sasl_username.clone()),
            ("kafka.sasl_password_file", path(&self.sasl_password_file)),
            ("kafka.ssl_ca_location", path(&self.ssl_ca_location)),
            (
                "kafka.ssl_certificate_location",
                path(&self.ssl_certificate_location),
            ),
            ("kafka.ssl_key_location", path(&self.ssl_key_location)),
        ];
        named
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
    }
}

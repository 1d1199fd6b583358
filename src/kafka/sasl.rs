//! SASL mechanisms for Kafka: PLAIN and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), as pure state machines.
//!
//! This module only builds and checks the SASL messages; `conn` carries them in
//! SaslHandshake/SaslAuthenticate. It must never log or format the password: `SaslConfig`'s
//! `Debug` redacts it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::KafkaError;

/// A SASL mechanism supported by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN`: user name and password in the clear (use TLS).
    Plain,
    /// `SCRAM-SHA-256`: challenge-response, the password is never sent.
    ScramSha256,
    /// `SCRAM-SHA-512`: as SCRAM-SHA-256 with SHA-512.
    ScramSha512,
}

impl Mechanism {
    /// The mechanism's name as Kafka and librdkafka spell it (`sasl.mechanism`), e.g. `SCRAM-SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The one parser of mechanism names (CLI, config file, env): `PLAIN`, `SCRAM-SHA-256`,
/// `SCRAM-SHA-512`, any case.
impl std::str::FromStr for Mechanism {
    type Err = KafkaError;
    fn from_str(s: &str) -> Result<Mechanism, KafkaError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Mechanism::Plain),
            "SCRAM-SHA-256" => Ok(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(Mechanism::ScramSha512),
            _ => Err(KafkaError::Config(format!(
                "'{s}': expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            ))),
        }
    }
}

/// The canonical spelling, as sent in SaslHandshake ([`Mechanism::name`]).
impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// From a string, as [`FromStr`](std::str::FromStr).
impl<'de> serde::Deserialize<'de> for Mechanism {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mechanism, D::Error> {
        d.deserialize_any(super::setting::FromStrVisitor::new(
            "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
            false,
        ))
    }
}

/// SASL credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// The mechanism (`sasl.mechanism`).
    pub mechanism: Mechanism,
    /// The user name (`sasl.username`).
    pub username: String,
    /// The password (`sasl.password`).
    pub password: String,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// PLAIN: `\0user\0password`.
pub fn plain_message(cfg: &SaslConfig) -> Vec<u8> {
    let mut m = Vec::with_capacity(cfg.username.len() + cfg.password.len() + 2);
    m.push(0);
    m.extend_from_slice(cfg.username.as_bytes());
    m.push(0);
    m.extend_from_slice(cfg.password.as_bytes());
    m
}

/// A random printable client nonce (24 bytes of OS randomness, base64).
pub fn client_nonce() -> Result<String, KafkaError> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw)
        .map_err(|e| KafkaError::Auth(format!("no randomness for nonce: {e}")))?;
    Ok(B64.encode(raw))
}

#[derive(Clone, Copy)]
enum Hash {
    S256,
    S512,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, KafkaError> {
        let bad_key = |_| KafkaError::Auth("HMAC key rejected".into());
        Ok(match self {
            Hash::S256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(bad_key)?;
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::S512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).map_err(bad_key)?;
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        })
    }
    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::S256 => Sha256::digest(data).to_vec(),
            Hash::S512 => Sha512::digest(data).to_vec(),
        }
    }
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::S256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Hash::S512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// Upper bound on the iteration count a server may ask for (hostile servers must not stall us).
const MAX_ITERATIONS: u32 = 1_000_000;

/// The client side of one SCRAM exchange.
pub struct Scram {
    hash: Hash,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl Scram {
    pub fn new(cfg: &SaslConfig, nonce: String) -> Result<Scram, KafkaError> {
        let hash = match cfg.mechanism {
            Mechanism::ScramSha256 => Hash::S256,
            Mechanism::ScramSha512 => Hash::S512,
            Mechanism::Plain => {
                return Err(KafkaError::Config("PLAIN is not a SCRAM mechanism".into()));
            }
        };
        let user = cfg.username.replace('=', "=3D").replace(',', "=2C");
        Ok(Scram {
            hash,
            password: cfg.password.clone(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce,
            server_signature: None,
        })
    }

    /// `n,,n=user,r=nonce`
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answer the server-first message with the client-final message.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, KafkaError> {
        let mut r = None;
        let mut s = None;
        let mut i = None;
        for part in server_first.split(',') {
            if let Some(v) = part.strip_prefix("r=") {
                r = Some(v);
            } else if let Some(v) = part.strip_prefix("s=") {
                s = Some(v);
            } else if let Some(v) = part.strip_prefix("i=") {
                i = Some(v);
            } else if part.starts_with("m=") {
                return Err(KafkaError::Auth(
                    "SCRAM server requires an unsupported extension".into(),
                ));
            } else if let Some(v) = part.strip_prefix("e=") {
                return Err(KafkaError::Auth(format!("SCRAM server error: {v}")));
            }
        }
        let (Some(r), Some(s), Some(i)) = (r, s, i) else {
            return Err(KafkaError::Auth(
                "malformed SCRAM server-first message".into(),
            ));
        };
        if !r.starts_with(&self.nonce) || r.len() == self.nonce.len() {
            return Err(KafkaError::Auth(
                "SCRAM server nonce does not extend ours".into(),
            ));
        }
        let salt = B64
            .decode(s)
            .map_err(|_| KafkaError::Auth("SCRAM salt is not base64".into()))?;
        let iterations: u32 = i
            .parse()
            .map_err(|_| KafkaError::Auth("SCRAM iteration count is not a number".into()))?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(KafkaError::Auth(format!(
                "SCRAM iteration count {iterations} out of range"
            )));
        }
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key")?;
        let stored_key = h.hash(&client_key);
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key")?;
        self.server_signature = Some(h.hmac(&server_key, auth_message.as_bytes())?);
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Check the server-final message (`v=...`): proves the server knows the password.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), KafkaError> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(KafkaError::Auth(format!("SCRAM server error: {e}")));
        }
        let v = server_final
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or_else(|| KafkaError::Auth("malformed SCRAM server-final message".into()))?;
        let got = B64
            .decode(v)
            .map_err(|_| KafkaError::Auth("SCRAM server signature is not base64".into()))?;
        match &self.server_signature {
            Some(want) if *want == got => Ok(()),
            _ => Err(KafkaError::Auth("SCRAM server signature mismatch".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_parse_any_case_and_round_trip() {
        assert_eq!(
            "scram-sha-256".parse::<Mechanism>().unwrap(),
            Mechanism::ScramSha256
        );
        for m in [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ] {
            assert_eq!(m.to_string().parse::<Mechanism>().unwrap(), m);
        }
        let e = "GSSAPI".parse::<Mechanism>().unwrap_err().to_string();
        assert!(
            e.contains("'GSSAPI': expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
            "{e}"
        );
    }

    fn cfg(m: Mechanism, user: &str, pass: &str) -> SaslConfig {
        SaslConfig {
            mechanism: m,
            username: user.into(),
            password: pass.into(),
        }
    }

    /// RFC 7677 section 3 test vector (SCRAM-SHA-256).
    #[test]
    fn scram_sha256_rfc7677_vector() {
        let mut s = Scram::new(
            &cfg(Mechanism::ScramSha256, "user", "pencil"),
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
        .unwrap();
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = s.client_final(server_first).unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(
            s.verify_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .is_err()
        );
    }

    /// SCRAM-SHA-512 has no RFC vector; this one was computed with Python's hashlib/hmac
    /// (an independent implementation of RFC 5802's formulas), same inputs as RFC 7677.
    #[test]
    fn scram_sha512_python_vector() {
        let mut s = Scram::new(
            &cfg(Mechanism::ScramSha512, "user", "pencil"),
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
        .unwrap();
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = s.client_final(server_first).unwrap();
        assert_eq!(
            fin,
            format!(
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p={}",
                SHA512_PROOF
            )
        );
        s.verify_server_final(&format!("v={SHA512_SERVER_SIG}"))
            .unwrap();
    }
    const SHA512_PROOF: &str =
        "gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==";
    const SHA512_SERVER_SIG: &str =
        "ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==";

    #[test]
    fn scram_rejects_foreign_nonce_and_huge_iterations() {
        let mut s = Scram::new(&cfg(Mechanism::ScramSha256, "u", "p"), "abc".into()).unwrap();
        assert!(s.client_final("r=xyz123,s=AAAA,i=4096").is_err());
        assert!(s.client_final("r=abcdef,s=AAAA,i=999999999").is_err());
        assert!(s.client_final("garbage").is_err());
    }

    #[test]
    fn username_is_escaped_and_password_never_debug_printed() {
        let c = cfg(Mechanism::ScramSha256, "a=b,c", "hunter2");
        let s = Scram::new(&c, "n".into()).unwrap();
        assert_eq!(s.client_first(), "n,,n=a=3Db=2Cc,r=n");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(plain_message(&c), b"\0a=b,c\0hunter2");
    }
}

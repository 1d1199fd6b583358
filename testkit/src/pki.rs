//! A throwaway test PKI made with the `openssl` CLI: a CA, a server certificate it signed for
//! `localhost`/`127.0.0.1` (also as a PEM key store for Kafka), a client certificate it signed, and
//! an unrelated second CA with a client certificate of its own.
//!
//! Must not be used for anything but tests (1-day keys, no passphrase), and must not decide whether a
//! missing `openssl` is a failure: it says which step failed ([`crate::require::require_test_certs`]
//! turns that into a `needs openssl` failure).

use std::path::Path;
use std::process::Command;

/// `openssl req` making a self-signed CA (`key`, `pem`) named `cn`.
fn ca_step(key: &'static str, pem: &'static str, cn: &'static str) -> Vec<&'static str> {
    vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem, "-subj", cn,
        "-days", "1",
    ]
}

/// `openssl req` then `openssl x509` making `<name>.key`/`<name>.pem` named `cn`, signed by
/// `<ca>.pem`, with the extensions in `ext` (a file in the directory).
fn signed_steps(
    name: &'static str,
    cn: &'static str,
    ca: &'static str,
    ext: &'static str,
) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    vec![
        s(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            cn,
        ]),
        s(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            ext,
        ]),
    ]
}

/// Make a test PKI with the `openssl` CLI in `dir`:
/// - `ca.pem` (+ `ca.key`), and an unrelated `other-ca.pem` (+ `other-ca.key`);
/// - `srv.pem`/`srv.key` signed by `ca` for `localhost` and `127.0.0.1`, and `srv-keystore.pem`
///   (key then certificate: Kafka's `ssl.keystore.type=PEM`);
/// - `client.pem`/`client.key` (CN `avro-edge-client`) signed by `ca`, and
///   `other-client.pem`/`other-client.key` signed by `other-ca`.
///
/// Keys are unencrypted PKCS#8. The error says which step failed (e.g. openssl missing); callers
/// decide whether that is a skip or a failure.
pub fn make_test_certs(dir: &Path) -> Result<(), String> {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text);
    write("san.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        .and_then(|()| write("client.cnf", "extendedKeyUsage=clientAuth\n"))
        .map_err(|e| e.to_string())?;
    let owned = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<String>>();
    let mut steps: Vec<Vec<String>> = vec![
        owned(ca_step("ca.key", "ca.pem", "/CN=avro-edge test CA")),
        owned(ca_step(
            "other-ca.key",
            "other-ca.pem",
            "/CN=avro-edge other CA",
        )),
    ];
    steps.extend(signed_steps("srv", "/CN=localhost", "ca", "san.cnf"));
    steps.extend(signed_steps(
        "client",
        "/CN=avro-edge-client",
        "ca",
        "client.cnf",
    ));
    steps.extend(signed_steps(
        "other-client",
        "/CN=avro-edge-other-client",
        "other-ca",
        "client.cnf",
    ));
    for step in steps {
        let out = Command::new("openssl")
            .args(&step)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {step:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| e.to_string());
    let keystore = format!("{}{}", read("srv.key")?, read("srv.pem")?);
    write("srv-keystore.pem", &keystore).map_err(|e| e.to_string())
}

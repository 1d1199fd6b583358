//! A throwaway test PKI made with the `openssl` CLI: a CA, a server certificate it signed for
//! `localhost`/`127.0.0.1`, and an unrelated second CA.
//!
//! Must not be used for anything but tests (1-day keys, no passphrase), and must not decide whether a
//! missing `openssl` is a failure: it says which step failed ([`crate::require::require_test_certs`]
//! turns that into a `needs openssl` failure).

use std::path::Path;
use std::process::Command;

/// Make a test PKI with the `openssl` CLI in `dir`: `ca.pem` (+ `ca.key`), `srv.pem`/`srv.key` signed by
/// it for `localhost` and `127.0.0.1`, and an unrelated `other-ca.pem` (+ `other-ca.key`). The error says
/// which step failed (e.g. openssl missing); callers decide whether that is a skip or a failure.
pub fn make_test_certs(dir: &Path) -> Result<(), String> {
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .map_err(|e| e.to_string())?;
    let ca = |key: &'static str, pem: &'static str, cn: &'static str| -> Vec<&'static str> {
        vec![
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem, "-subj",
            cn, "-days", "1",
        ]
    };
    let steps: Vec<Vec<&str>> = vec![
        ca("ca.key", "ca.pem", "/CN=avro-edge test CA"),
        ca("other-ca.key", "other-ca.pem", "/CN=avro-edge other CA"),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    ];
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
    Ok(())
}

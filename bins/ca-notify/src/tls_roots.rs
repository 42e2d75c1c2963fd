//! Root certificates for HTTP clients we do not build, on a host without a store.
//!
//! Our own clients trust Mozilla's roots compiled into the binary (`ca-notify-http`). The
//! Snowflake connector builds its own `reqwest` client on the platform verifier, which
//! reads the system's store (`/etc/ssl/certs/…`, or `SSL_CERT_FILE` / `SSL_CERT_DIR`) and
//! refuses to build a client when it finds none — as in the empty container image. So,
//! before anything starts, when the host has no store and none is named, the same
//! compiled-in roots are written once to a PEM file in the temporary folder and named
//! through `SSL_CERT_FILE`. A host with a store, or an operator's own bundle, is left
//! alone.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Where the platform verifier looks for a store (`openssl-probe`'s candidates, used by
/// `rustls-native-certs` on Linux).
const SYSTEM_STORES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
];

/// Names the compiled-in roots through `SSL_CERT_FILE` when the host has no store and
/// none is named. Call before any thread starts: it sets a process environment variable.
pub fn provide_when_missing() {
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return;
    }
    if SYSTEM_STORES.iter().any(|p| Path::new(p).exists()) {
        return;
    }
    if let Some(path) = write_bundle(&std::env::temp_dir()) {
        std::env::set_var("SSL_CERT_FILE", path);
    }
}

/// Writes the compiled-in roots as PEM into `dir`; `None` when it cannot.
fn write_bundle(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(format!("ca-notify-roots-{}.pem", std::process::id()));
    std::fs::write(&path, pem()).ok()?;
    Some(path)
}

/// Every compiled-in root certificate, PEM-encoded.
fn pem() -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = String::new();
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = engine.encode(der.as_ref());
        for chunk in text.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundle holds every root, each a certificate reqwest (and so the platform
    /// verifier's PEM reader) accepts.
    #[test]
    fn the_bundle_holds_every_root_as_pem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_bundle(dir.path()).expect("written");
        let text = std::fs::read(&path).expect("read");
        let certs = reqwest::Certificate::from_pem_bundle(&text).expect("a PEM bundle");
        assert_eq!(certs.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
    }
}

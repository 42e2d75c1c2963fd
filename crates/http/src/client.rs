//! The defaults every `reqwest::Client` of ours starts from: our user agent, a connect
//! timeout, and no redirects (a redirect is a wrong base URL; following one would send
//! our credentials elsewhere, and a redirected POST turns into a GET). Each adapter adds
//! what is its own (request timeout, pool size, `https_only`) and calls `build()`.
//!
//! Trust: the system's root certificates when it has them, and always Mozilla's, compiled
//! in (`webpki-root-certs`), so the static binary verifies servers in an empty container
//! image. Without them, reqwest's platform verifier refuses to build a client on a host
//! with no certificate store ("No CA certificates were loaded from the system").

use std::time::Duration;

use reqwest::ClientBuilder;

/// The `User-Agent` of every request we send.
pub const USER_AGENT: &str = concat!("ca-notify/", env!("CARGO_PKG_VERSION"));

/// A client builder with our shared defaults and `connect_timeout`.
pub fn client_builder(connect_timeout: Duration) -> ClientBuilder {
    reqwest::Client::builder()
        .tls_certs_merge(bundled_roots())
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
}

/// Mozilla's root certificates, as reqwest takes them.
fn bundled_roots() -> impl Iterator<Item = reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_us_and_the_builder_builds() {
        assert!(USER_AGENT.starts_with("ca-notify/"));
        client_builder(Duration::from_secs(1))
            .build()
            .expect("the shared defaults make a client");
    }

    #[test]
    fn every_bundled_root_is_taken() {
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
        assert_eq!(
            bundled_roots().count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
    }
}

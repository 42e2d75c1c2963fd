//! The defaults every `reqwest::Client` of ours starts from: our user agent, a connect
//! timeout, and no redirects (a redirect is a wrong base URL; following one would send
//! our credentials elsewhere, and a redirected POST turns into a GET). Each adapter adds
//! what is its own (request timeout, pool size, `https_only`) and calls `build()`.

use std::time::Duration;

use reqwest::ClientBuilder;

/// The `User-Agent` of every request we send.
pub const USER_AGENT: &str = concat!("ca-notify/", env!("CARGO_PKG_VERSION"));

/// A client builder with our shared defaults and `connect_timeout`.
pub fn client_builder(connect_timeout: Duration) -> ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
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
}

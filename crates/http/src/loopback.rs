//! The loopback rule: a base URL may use plain `http://` only when its host is this
//! machine (`localhost`, `127.0.0.0/8`, `::1`), which is how the simulators and
//! fakesnow run; everything else must be `https://`.

use std::net::IpAddr;

use url::Url;

/// Whether `url`'s host is a loopback host. A URL without a host is not.
pub fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(is_loopback_host)
}

/// Whether `host` (as in a URL: an IPv6 address may be bracketed) is `localhost` or a
/// loopback IP address.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("a URL")
    }

    #[test]
    fn loopback_hosts_are_localhost_and_loopback_addresses() {
        for text in [
            "http://localhost:8080/",
            "http://LOCALHOST/",
            "http://127.0.0.1:1/",
            "http://127.8.9.10/",
            "http://[::1]:3000/",
        ] {
            assert!(is_loopback(&url(text)), "{text}");
        }
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("::1"));
    }

    #[test]
    fn other_hosts_are_not() {
        for text in [
            "http://example.com/",
            "http://localhost.example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://0.0.0.0/",
            "file:///tmp/x",
        ] {
            assert!(!is_loopback(&url(text)), "{text}");
        }
        assert!(!is_loopback_host(""));
    }
}

//! The headers ringscrape writes itself, and so takes from no one else: those that frame the
//! message (RFC 9112 §6), the `Host` that routes it, and those that belong to one connection,
//! which HTTP/2 forbids (RFC 9113 §8.2.2).

/// Headers that frame the message: ringscrape writes them from the body it sends, and one more
/// beside its own is the request-smuggling shape (RFC 9112 §6.1, §6.3).
const FRAMING: [http::HeaderName; 2] = [
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
];

/// True for a header that frames the message (`Content-Length`, `Transfer-Encoding`).
pub fn frames(name: &http::HeaderName) -> bool {
    FRAMING.contains(name)
}

/// True for a header that only one connection may carry, which HTTP/2 forbids (RFC 9113
/// §8.2.2): `te` is allowed there as `trailers` only.
pub fn connection_specific(name: &http::HeaderName, value: &[u8]) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
    ) || (name == http::header::TE && !value.eq_ignore_ascii_case(b"trailers"))
}

/// True for a header `--auth-command` may not set: one that frames the request, routes it
/// (`host`) or belongs to the connection. The command's output may come from a token endpoint,
/// which must not be able to reshape the request.
pub fn reserved_for_ringscrape(name: &http::HeaderName) -> bool {
    frames(name)
        || name == http::header::HOST
        || name == http::header::TRAILER
        || connection_specific(name, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_host_and_connection_headers_are_ringscrape_s_own() {
        let name = |text: &str| http::HeaderName::from_bytes(text.as_bytes()).expect("a name");
        for own in [
            "content-length",
            "Transfer-Encoding",
            "host",
            "connection",
            "keep-alive",
            "proxy-connection",
            "upgrade",
            "te",
            "trailer",
        ] {
            assert!(reserved_for_ringscrape(&name(own)), "{own}");
        }
        for theirs in ["authorization", "cookie", "x-api-key", "accept"] {
            assert!(!reserved_for_ringscrape(&name(theirs)), "{theirs}");
        }
        assert!(!connection_specific(&name("te"), b"Trailers"));
        assert!(connection_specific(&name("te"), b"gzip"));
    }
}

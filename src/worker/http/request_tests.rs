//! The request as each protocol writes it: the template's compiled request (`crate::request`)
//! through the HTTP/1.1 and HTTP/2 encoders beside their protocols (`h1.rs`, `h2.rs`).

use super::{h1, h2};
use crate::request::*;
use crate::template::Values;

fn write_h1(
    t: &RequestTemplate,
    values: &Values,
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> Result<(), KeyBreaksHeader> {
    h1::write_request(&t.parts(values, None)?, out, body);
    Ok(())
}

fn write_h1_hop(
    t: &RequestTemplate,
    values: &Values,
    hop: &Hop,
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> Result<(), KeyBreaksHeader> {
    h1::write_request(&t.parts(values, Some(hop))?, out, body);
    Ok(())
}

fn build_h2(
    t: &RequestTemplate,
    values: &Values,
    hop: Option<&Hop>,
) -> Result<http::Request<Vec<u8>>, KeyBreaksHeader> {
    h2::build_request(&t.parts(values, hop)?)
}

fn spec(url: &str) -> RequestSpec {
    RequestSpec::of_url(url)
}

fn h1(template: &RequestTemplate, key: &[u8]) -> String {
    let (mut out, mut body) = (Vec::new(), Vec::new());
    write_h1(template, &Values::one(key), &mut out, &mut body).expect("key fits");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn a_get_carries_host_with_port_and_the_user_agent() {
    let t = RequestTemplate::compile(&spec("http://h:8080/log?id={id}")).expect("valid");
    assert_eq!(
        h1(&t, b"42"),
        "GET /log?id=42 HTTP/1.1\r\nhost: h:8080\r\nuser-agent: ringscrape/test\r\n\r\n"
    );
    assert_eq!(t.origin.port, 8080);
    let t = RequestTemplate::compile(&spec("https://example.org/{id}")).expect("valid");
    assert_eq!((t.origin.port, t.origin.scheme), (443, Scheme::Https));
}

#[test]
fn method_headers_and_body_expand_the_key() {
    let mut s = spec("http://h/items");
    s.headers = vec!["Authorization: Bearer t0k".into(), "X-Item: {id}".into()];
    s.body = Some(b"{\"id\":\"{id}\"}".to_vec());
    s.user_agent = "ua".into();
    let t = RequestTemplate::compile(&s).expect("valid");
    assert_eq!(t.method, http::Method::POST, "a body makes it a POST");
    assert_eq!(
        h1(&t, b"a b"),
        "POST /items HTTP/1.1\r\nhost: h\r\nauthorization: Bearer t0k\r\nx-item: a b\r\n\
         user-agent: ua\r\ncontent-length: 12\r\n\r\n{\"id\":\"a b\"}"
    );
    let (mut out, mut body) = (Vec::new(), Vec::new());
    assert_eq!(
        write_h1(&t, &Values::one(b"x\r\ny: 1"), &mut out, &mut body),
        Err(KeyBreaksHeader)
    );
    let request = build_h2(&t, &Values::one(b"7"), None).expect("h2 request");
    assert_eq!(request.uri(), "http://h/items");
    assert_eq!(request.headers()["x-item"], "7");
    assert!(request.headers().get("host").is_none());
    assert_eq!(request.body(), b"{\"id\":\"7\"}");
}

#[test]
fn given_host_and_user_agent_replace_ours() {
    let mut s = spec("http://127.0.0.1:9/{id}");
    s.headers = vec!["Host: example.org".into(), "User-Agent: me".into()];
    s.method = Some("DELETE".into());
    let t = RequestTemplate::compile(&s).expect("valid");
    assert_eq!(
        h1(&t, b"1"),
        "DELETE /1 HTTP/1.1\r\nhost: example.org\r\nuser-agent: me\r\n\r\n"
    );
}

#[test]
fn keys_are_percent_encoded_in_the_url_only() {
    let mut s = spec("http://h/u/{id}?q={id}");
    s.headers = vec!["X-Key: {id}".into()];
    let t = RequestTemplate::compile(&s).expect("valid");
    let text = h1(&t, "a/b?c&d é".as_bytes());
    assert!(
        text.starts_with("GET /u/a%2Fb%3Fc%26d%20%C3%A9?q=a%2Fb%3Fc%26d%20%C3%A9 HTTP/1.1"),
        "{text}"
    );
    assert!(text.contains("x-key: a/b?c&d é\r\n"), "{text}");
}

#[test]
fn key_columns_fill_path_query_host_header_and_body() {
    let mut s = spec("http://{tenant}.example/users/{user}/logs?date={date}");
    s.key_columns = vec![
        "user".into(),
        "date".into(),
        "tenant".into(),
        "token".into(),
    ];
    s.headers = vec!["X-Api-Key: {token}".into()];
    s.body = Some(br#"{"user":"{user}","n":{id}}"#.to_vec());
    let t = RequestTemplate::compile(&s).expect("valid");
    let mut values = Values::one(b"3");
    for value in [&b"ann lee"[..], b"2026-01-02", b"acme", b"k1"] {
        values.push(Some(value));
    }
    let text = {
        let (mut out, mut body) = (Vec::new(), Vec::new());
        write_h1(&t, &values, &mut out, &mut body).expect("fits");
        String::from_utf8(out).expect("utf-8")
    };
    assert!(
        text.starts_with(
            "POST /users/ann%20lee/logs?date=2026-01-02 HTTP/1.1\r\nhost: acme.example\r\n"
        ),
        "{text}"
    );
    assert!(text.contains("x-api-key: k1\r\n"), "{text}");
    assert!(text.ends_with(r#"{"user":"ann lee","n":3}"#), "{text}");
    assert_eq!(t.origin_of(&values).expect("host").host, "acme.example");
    // Only values that land in a header are checked for line breaks.
    let mut broken = Values::one(b"3");
    for value in [&b"a\nb"[..], b"d", b"acme", b"k1"] {
        broken.push(Some(value));
    }
    assert!(write_h1(&t, &broken, &mut Vec::new(), &mut Vec::new()).is_ok());
    let mut broken = Values::one(b"3");
    for value in [&b"a"[..], b"d", b"acme", b"k\r\n1"] {
        broken.push(Some(value));
    }
    assert_eq!(
        write_h1(&t, &broken, &mut Vec::new(), &mut Vec::new()),
        Err(KeyBreaksHeader)
    );
}

#[test]
fn credentials_replace_a_header_of_the_same_name_and_stay_as_they_are() {
    let mut s = spec("http://h/{id}");
    s.headers = vec!["Authorization: Bearer old".into(), "X-A: 1".into()];
    let t = RequestTemplate::compile(&s).expect("valid");
    let fresh = header_lines("not a header\nAuthorization: Bearer {id}\nCookie: s=1; t={x}\n");
    assert_eq!(fresh.len(), 2);
    let text = h1(&t.with_headers(&fresh), b"7");
    assert!(!text.contains("old"), "{text}");
    assert!(text.contains("authorization: Bearer {id}\r\n"), "{text}");
    assert!(text.contains("cookie: s=1; t={x}\r\n") && text.contains("x-a: 1\r\n"));
}

#[test]
fn a_header_without_a_colon_is_refused_without_its_secret() {
    let mut s = spec("http://h/{id}");
    s.headers = vec!["Authorization Bearer s3cret".into()];
    let err = RequestTemplate::compile(&s)
        .expect_err("no colon")
        .to_string();
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn id_in_the_host_gives_each_key_its_own_origin_and_host_header() {
    let template = RequestTemplate::compile(&spec("https://{id}.example.com:8443/a"))
        .expect("a hole in the host");
    assert!(template.host_varies());
    let origin = template
        .origin_of(&Values::one(b"shop-7"))
        .expect("a host name");
    assert_eq!(
        (origin.host.as_str(), origin.port, origin.authority.as_str()),
        ("shop-7.example.com", 8443, "shop-7.example.com:8443")
    );
    assert_eq!(origin.scheme, Scheme::Https);
    let mut out = Vec::new();
    write_h1(
        &template,
        &Values::one(b"shop-7"),
        &mut out,
        &mut Vec::new(),
    )
    .expect("written");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.starts_with("GET /a HTTP/1.1\r\nhost: shop-7.example.com:8443\r\n"),
        "{text}"
    );
    for bad in [&b"a/b"[..], b"a b", b"", b"x\r\ny"] {
        assert!(template.origin_of(&Values::one(bad)).is_err(), "{bad:?}");
    }
    let plain = RequestTemplate::compile(&spec("http://{id}/")).expect("the whole host");
    assert_eq!(
        plain
            .origin_of(&Values::one(b"10.0.0.1"))
            .expect("an address")
            .authority,
        "10.0.0.1"
    );
}

#[test]
fn bad_templates_are_refused() {
    let bad = |url: &str| RequestTemplate::compile(&spec(url)).expect_err(url);
    assert!(matches!(
        bad("http://h/log?id=1"),
        RequestError::NoPlaceholder(_)
    ));
    assert!(matches!(bad("ftp://h/{id}"), RequestError::Scheme(_)));
    assert!(matches!(bad("/log?id={id}"), RequestError::Scheme(_)));
    // A placeholder for the URL's start is checked per item; what the template writes itself
    // (a scheme not fetched, a space) is wrong for every item, and refused at once.
    assert!(matches!(bad("http{id}://h/x"), RequestError::Scheme(_)));
    assert!(matches!(bad("ftp://{id}:9/x"), RequestError::Scheme(_)));
    assert!(matches!(bad("{id}/a b"), RequestError::Url(..)));
    assert!(matches!(
        bad("http://h/log?id={id} x"),
        RequestError::Url(..)
    ));
    let mut s = spec("http://h/{id}");
    s.headers = vec!["no colon".into()];
    assert!(matches!(
        RequestTemplate::compile(&s),
        Err(RequestError::HeaderSyntax(_))
    ));
    s.headers = vec!["Bad Name: x".into()];
    assert!(matches!(
        RequestTemplate::compile(&s),
        Err(RequestError::Header(..))
    ));
    s.headers = vec![];
    s.method = Some("GE T".into());
    assert!(matches!(
        RequestTemplate::compile(&s),
        Err(RequestError::Method(_))
    ));
}

#[test]
fn redirects_resolve_the_location_and_change_the_method_as_rfc_9110_says() {
    let mut s = spec("http://h:8/a/b?id={id}");
    s.headers = vec!["Authorization: Bearer x".into()];
    s.body = Some(b"{id}".to_vec());
    let t = RequestTemplate::compile(&s).expect("valid");
    let post = http::Method::POST;
    let hop = |status, location: &str| {
        t.redirect(&t.origin, b"/a/b?id=1", &post, status, location.as_bytes())
            .expect("a usable Location")
    };
    let same = hop(307, "c?x=1").expect("relative");
    assert_eq!(
        (same.target.as_slice(), same.with_body),
        (&b"/a/c?x=1"[..], true)
    );
    assert_eq!(same.origin, t.origin);
    let other = hop(302, "https://other.example/z").expect("absolute");
    assert_eq!(
        (other.origin.port, other.method.clone(), other.with_body),
        (443, http::Method::GET, false)
    );
    assert_eq!(hop(303, "/root").expect("absolute path").target, b"/root");
    assert_eq!(
        hop(301, "//cdn.example/p")
            .expect("scheme-relative")
            .origin
            .host,
        "cdn.example"
    );
    assert_eq!(hop(200, "/x"), None, "not a redirect");
    assert_eq!(hop(302, "ftp://x/y"), None, "not http: the 3xx stays");
    assert_eq!(hop(302, "mailto:a@b"), None, "not a path: the 3xx stays");
    let broken = t.redirect(&t.origin, b"/", &post, 302, b"http://h:70000/x");
    assert!(
        broken.is_err_and(|why| why.contains("70000")),
        "an error row"
    );

    let (mut out, mut body) = (Vec::new(), Vec::new());
    write_h1_hop(&t, &Values::one(b"1"), &other, &mut out, &mut body).expect("fits");
    let text = String::from_utf8(out.clone()).expect("utf-8");
    assert!(
        text.starts_with("GET /z HTTP/1.1\r\nhost: other.example\r\n"),
        "{text}"
    );
    assert!(
        !text.contains("authorization"),
        "credentials stay home: {text}"
    );
    assert!(!text.contains("content-length"), "{text}");
    write_h1_hop(&t, &Values::one(b"1"), &same, &mut out, &mut body).expect("fits");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.starts_with("POST /a/c?x=1 HTTP/1.1\r\nhost: h:8\r\nauthorization: Bearer x\r\n"),
        "{text}"
    );
    assert!(text.ends_with("content-length: 1\r\n\r\n1"), "{text}");
}

#[test]
fn a_framing_header_is_refused_and_never_sent_twice() {
    for line in ["Content-Length: 5", "transfer-encoding: chunked"] {
        let mut s = spec("http://h/{id}");
        s.headers = vec![line.into()];
        s.body = Some(b"a".to_vec());
        assert!(
            matches!(RequestTemplate::compile(&s), Err(RequestError::Framing(_))),
            "{line}"
        );
    }
    // Nor from the credentials, should one get past the supervisor.
    let t = RequestTemplate::compile(&spec("http://h/{id}")).expect("valid");
    let fresh = header_lines("Content-Length: 0\nTransfer-Encoding: chunked\nHost: evil\nA: b\n");
    let text = h1(&t.with_headers(&fresh), b"7");
    assert_eq!(
        text,
        "GET /7 HTTP/1.1\r\nhost: h\r\nuser-agent: ringscrape/test\r\na: b\r\n\r\n"
    );
}

#[test]
fn http2_leaves_out_connection_specific_headers() {
    let mut s = spec("http://h/{id}");
    s.headers = vec![
        "Connection: keep-alive".into(),
        "Keep-Alive: 5".into(),
        "TE: gzip".into(),
        "X-A: 1".into(),
    ];
    let t = RequestTemplate::compile(&s).expect("valid over HTTP/1.1");
    assert_eq!(
        t.connection_specific_header().as_deref(),
        Some("connection")
    );
    let request = build_h2(&t, &Values::one(b"7"), None).expect("h2 request");
    let names: Vec<&str> = request.headers().keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["x-a", "user-agent"]);
    s.headers = vec!["TE: trailers".into()];
    let t = RequestTemplate::compile(&s).expect("valid");
    assert_eq!(
        t.connection_specific_header(),
        None,
        "te: trailers is allowed"
    );
}

#[test]
fn fixed_header_lines_are_written_as_line_by_line_and_never_on_a_redirect_elsewhere() {
    let mut s = spec("http://h:8080/log?id={id}");
    s.headers = vec!["Authorization: Bearer a".into(), "Accept: */*".into()];
    let t = RequestTemplate::compile(&s).expect("valid");
    let values = Values::one(b"7");
    let fixed = t.parts(&values, None).expect("fits").fixed_lines();
    let fixed = String::from_utf8(fixed.expect("no header varies").to_vec()).expect("utf-8");
    assert_eq!(
        fixed,
        "host: h:8080\r\nauthorization: Bearer a\r\naccept: */*\r\nuser-agent: ringscrape/test\r\n"
    );
    // A hop writes the lines one by one: to the same place, the same bytes as the fixed lines.
    let hop_to = |origin: &Origin| Hop {
        origin: origin.clone(),
        target: b"/log?id=7".to_vec(),
        method: http::Method::GET,
        with_body: false,
    };
    let mut one_by_one = Vec::new();
    write_h1_hop(
        &t,
        &values,
        &hop_to(&t.origin),
        &mut one_by_one,
        &mut Vec::new(),
    )
    .expect("fits");
    assert_eq!(String::from_utf8(one_by_one).expect("utf-8"), h1(&t, b"7"));
    assert_eq!(
        h1(&t, b"7"),
        format!("GET /log?id=7 HTTP/1.1\r\n{fixed}\r\n")
    );
    // Elsewhere: that host, and the credential stays home.
    let evil = Origin {
        host: "evil.example".into(),
        authority: "evil.example".into(),
        ..t.origin.clone()
    };
    let mut out = Vec::new();
    write_h1_hop(&t, &values, &hop_to(&evil), &mut out, &mut Vec::new()).expect("fits");
    let out = String::from_utf8(out).expect("utf-8");
    assert!(out.contains("host: evil.example\r\n"), "{out}");
    assert!(
        !out.contains("authorization") && out.contains("accept: */*"),
        "{out}"
    );
    // A header with a hole has no fixed lines.
    s.headers.push("X-Item: {id}".into());
    let t = RequestTemplate::compile(&s).expect("valid");
    assert!(
        t.parts(&values, None)
            .expect("fits")
            .fixed_lines()
            .is_none()
    );
    assert!(h1(&t, b"7").contains("x-item: 7\r\n"));
}

#[test]
fn credentials_go_to_the_items_own_origin_only_every_one_the_redaction_list_names() {
    let mut s = spec("https://{id}.example.com/list?key=1");
    s.headers = vec![
        "Authorization: Bearer a".into(),
        "Cookie: s=1".into(),
        "X-Api-Key: k".into(),
        "Accept: */*".into(),
    ];
    let t = RequestTemplate::compile(&s).expect("valid");
    let values = Values::one(b"tenant");
    let own = t.origin_of(&values).expect("a host");
    let page = |origin: &Origin| {
        let hop = Hop {
            origin: origin.clone(),
            target: b"/list?key=1&page=2".to_vec(),
            method: http::Method::GET,
            with_body: true,
        };
        let mut out = Vec::new();
        write_h1_hop(&t, &values, &hop, &mut out, &mut Vec::new()).expect("fits");
        let h2 = build_h2(&t, &values, Some(&hop)).expect("fits");
        let h2_names: Vec<String> = h2.headers().keys().map(|n| n.to_string()).collect();
        (String::from_utf8(out).expect("utf-8"), h2_names.join(","))
    };
    // A page on the key's own host keeps them (it is not the template's stand-in host).
    let (h1, h2) = page(&own);
    for name in ["authorization", "cookie", "x-api-key"] {
        assert!(h1.contains(&format!("{name}: ")), "{name}: {h1}");
        assert!(h2.contains(name), "{name}: {h2}");
    }
    // Another host, or the same one over plain http, gets none of them.
    let other = Origin {
        host: "evil.example".into(),
        authority: "evil.example".into(),
        ..own.clone()
    };
    let plain = Origin {
        scheme: Scheme::Http,
        port: 80,
        ..own.clone()
    };
    for origin in [other, plain] {
        let (h1, h2) = page(&origin);
        for name in ["authorization", "cookie", "x-api-key"] {
            assert!(!h1.contains(name), "{name} to {origin:?}: {h1}");
            assert!(!h2.contains(name), "{name} to {origin:?}: {h2}");
        }
        assert!(h1.contains("accept: */*"), "{h1}");
    }
}

/// A template whose start is the key column `url` (or `base`), and its values.
fn url_template(url: &str, column: &str) -> RequestTemplate {
    let mut s = spec(url);
    s.key_columns = vec![column.into()];
    RequestTemplate::compile(&s).expect(url)
}

fn with_column(value: &[u8]) -> Values {
    let mut values = Values::one(b"7");
    values.push(Some(value));
    values
}

#[test]
fn a_whole_url_from_a_column_is_sent_as_it_is_with_its_authority_as_host() {
    let t = url_template("{url}", "url");
    assert!(t.host_varies());
    let values = with_column(b"https://api.example:8443/v1/a%2Fb?q=a+b&x=%41#frag");
    let origin = t.origin_of(&values).expect("a URL");
    assert_eq!(
        (origin.scheme, origin.host.as_str(), origin.port),
        (Scheme::Https, "api.example", 8443)
    );
    assert_eq!(t.target(&values), b"/v1/a%2Fb?q=a+b&x=%41");
    let (mut out, mut body) = (Vec::new(), Vec::new());
    write_h1(&t, &values, &mut out, &mut body).expect("written");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.starts_with("GET /v1/a%2Fb?q=a+b&x=%41 HTTP/1.1\r\nhost: api.example:8443\r\n"),
        "{text}"
    );
    // No path: `/`; a query alone: `/?q`; non-ASCII in the path percent-encoded.
    let t = url_template("{url}", "url");
    assert_eq!(t.target(&with_column(b"http://h")), b"/");
    assert_eq!(t.target(&with_column(b"http://h?q=1")), b"/?q=1");
    assert_eq!(
        t.target(&with_column("http://h/caf\u{e9}".as_bytes())),
        b"/caf%C3%A9"
    );
    let origin = t
        .origin_of(&with_column(b"HTTP://[::1]:81/"))
        .expect("IPv6");
    assert_eq!((origin.host.as_str(), origin.port), ("::1", 81));
}

#[test]
fn a_prefix_placeholder_keeps_the_rest_of_the_template_encoded_as_ever() {
    let t = url_template("{base}/api?id={id}", "base");
    let values = with_column(b"http://h:8080/v2");
    let mut values_id = Values::one(b"a b");
    values_id.push(values.get(1));
    let origin = t.origin_of(&values_id).expect("a URL");
    assert_eq!(origin.authority, "h:8080");
    assert_eq!(t.target(&values_id), b"/v2/api?id=a%20b");
    // A query added after a whole URL; `://` in it is no scheme.
    let t = url_template("{url}?next=http://x", "url");
    assert_eq!(t.target(&with_column(b"http://h/p")), b"/p?next=http://x");
    // A port from a column.
    let t = url_template("http://h:{url}/x", "url");
    assert_eq!(t.origin_of(&with_column(b"9000")).expect("port").port, 9000);
    assert!(t.origin_of(&with_column(b"99999")).is_err());
}

#[test]
fn a_bad_url_in_a_column_fails_its_item_saying_why() {
    let t = url_template("{url}", "url");
    let why = |url: &[u8]| {
        t.origin_of(&with_column(url))
            .expect_err("refused")
            .to_string()
    };
    for (url, says) in [
        (&b"example.com/x"[..], "no scheme"),
        (b"ftp://h/x", "a ftp: URL"),
        (b"http://h:99999/x", "port 99999"),
        (b"http:///x", "no host"),
        (b"http://:80/x", "no host"),
        (b"http://h/a b", "a space"),
        (b"http://h/a\x01b", "control byte"),
        (b"http://h/a\tb", "0x09"),
        (b"", "empty"),
        (b"https://user:pw@h/", "user:password@"),
        ("http://caf\u{e9}.example/".as_bytes(), "punycode"),
        (b"mailto:x@y", "a mailto: URL"),
    ] {
        let text = why(url);
        assert!(text.contains(says), "{url:?}: {text}");
        assert!(!text.contains(":pw@"), "{text}");
        assert!(t.target(&with_column(url)).is_empty());
        assert_eq!(
            write_h1(&t, &with_column(url), &mut Vec::new(), &mut Vec::new()),
            Err(KeyBreaksHeader)
        );
    }
}

#[test]
fn a_whole_url_keeps_a_given_host_and_redirects_go_where_they_point() {
    let mut s = spec("{url}");
    s.key_columns = vec!["url".into()];
    s.headers = vec!["Host: given.example".into(), "Cookie: c=1".into()];
    let t = RequestTemplate::compile(&s).expect("valid");
    let values = with_column(b"http://a.example/x");
    let (mut out, mut body) = (Vec::new(), Vec::new());
    write_h1(&t, &values, &mut out, &mut body).expect("written");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.contains("host: given.example\r\n"), "{text}");
    let own = t.origin_of(&values).expect("origin");
    let hop = t
        .redirect(&own, b"/x", &http::Method::GET, 302, b"http://b.example/y")
        .expect("followed")
        .expect("a hop");
    out.clear();
    write_h1_hop(&t, &values, &hop, &mut out, &mut body).expect("written");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.starts_with("GET /y HTTP/1.1\r\nhost: b.example\r\n"),
        "{text}"
    );
    assert!(!text.contains("c=1"), "credentials stay home: {text}");
    let home = t
        .redirect(&own, b"/x", &http::Method::GET, 302, b"/z")
        .expect("followed")
        .expect("a hop");
    out.clear();
    write_h1_hop(&t, &values, &home, &mut out, &mut body).expect("written");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.contains("cookie: c=1\r\n"), "{text}");
}

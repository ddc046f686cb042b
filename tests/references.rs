//! Where a redirect's `Location` and a next page's URL lead (RFC 3986 §5.2), against a raw-socket
//! server that sends the references curl and real APIs meet: a relative one whose query holds
//! `://` is followed; `mailto:`, `javascript:` and other schemes are not (the 3xx row stays);
//! an http(s) URL that cannot be fetched (a port above 65535, `user:pw@`, a broken IPv6 host,
//! 70 KB long) is an error row, never a silent last page; a port above 65535 in `--url` exits
//! 2; a comma inside a quoted `Link` parameter does not start a link (RFC 8288 §3).

use std::io::Write;

use crate::common::*;

/// The `Location` of `/redirect/K`.
const LOCATIONS: [&str; 5] = [
    "/echo/0?return=https://example.com/x",
    "mailto:admin@example.com",
    "javascript:alert(1)",
    "http://127.0.0.1:70000/x",
    "http:/x",
];

/// The `next` of `/list/K`'s JSON (the last one is made long at run time).
const NEXTS: [&str; 7] = [
    "/done?return=https://example.com/x",
    "ftp://127.0.0.1/x",
    "file:///etc/passwd",
    "http://127.0.0.1:70000/x",
    "http://user:pw@127.0.0.1:1/x",
    "http://[::1/x",
    "",
];

fn long_next() -> String {
    format!("/done?{}", "a".repeat(70_000))
}

/// A server answering `/redirect/K` with a 302 to `LOCATIONS[K]`, `/list/K` with a page whose
/// next is `NEXTS[K]`, `/link/K` with a `Link` header, and anything else with a last page.
fn server() -> String {
    raw_server(|target, stream| {
        let number = |prefix: &str| {
            target
                .strip_prefix(prefix)
                .and_then(|k| k.parse::<usize>().ok())
        };
        let (status, header, body) = if let Some(k) = number("/redirect/") {
            (
                "302 Found",
                format!("Location: {}\r\n", LOCATIONS[k]),
                String::new(),
            )
        } else if let Some(k) = number("/list/") {
            let next = match NEXTS[k] {
                "" => long_next(),
                next => next.to_string(),
            };
            ("200 OK", String::new(), format!("{{\"next\":\"{next}\"}}"))
        } else if number("/link/").is_some() {
            // One link only: its title holds what looks like another, with rel=next.
            let link = r#"</link/self>; rel="self"; title="x, </evil>; rel=next""#;
            ("200 OK", format!("Link: {link}\r\n"), "{}".into())
        } else {
            ("200 OK", String::new(), r#"{"next":null}"#.into())
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\n{header}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).is_ok()
    })
}

#[test]
fn a_location_is_followed_as_rfc_3986_resolves_it_and_other_schemes_keep_the_3xx() {
    let base = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &format!("{base}/redirect/{{id}}"), "0..5")
        .args(["--follow-redirects", "3", "-o", "out.csv", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut rows = read_rows(&dir.path().join("out.csv"));
    rows.sort_by_key(|r| r.id);
    let got: Vec<(Option<u16>, &str)> = rows.iter().map(|r| (r.status, r.error.as_str())).collect();
    assert_eq!(
        got,
        [
            (Some(200), ""),        // a path whose query holds `://`: followed
            (Some(302), ""),        // mailto: is not fetched, as curl keeps the 302
            (Some(302), ""),        // nor javascript:
            (Some(302), "request"), // port 70000: not port 80
            (Some(302), "request"), // http: without a host: not a path
        ]
    );
}

#[test]
fn a_next_that_cannot_be_followed_is_an_error_row_that_keeps_it() {
    let base = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &format!("{base}/list/{{id}}"), "0..7")
        .args(["--next", "/next", "-o", "out.csv", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut rows = read_rows(&dir.path().join("out.csv"));
    rows.sort_by_key(|r| (r.id, r.extra[0].clone()));
    // Key 0: its relative next, `://` in the query, is the second page.
    assert_eq!(rows[0].extra, ["0", &format!("{base}{}", NEXTS[0])]);
    assert_eq!((rows[1].id, rows[1].extra[0].as_str()), (0, "1"));
    assert_eq!((rows[1].status, rows[1].error.as_str()), (Some(200), ""));
    for row in &rows[2..] {
        let given = match NEXTS[row.id as usize] {
            "" => long_next(),
            next => next.to_string(),
        };
        assert_eq!(
            (row.status, row.error.as_str(), row.extra[0].as_str()),
            (Some(200), "request", "0"),
            "key {}: {given:.60}",
            row.id
        );
        assert_eq!(row.extra[1], given, "key {}: the next is kept", row.id);
    }
    assert_eq!(rows.len(), 8, "one page each, two for key 0");
}

#[test]
fn a_comma_inside_a_quoted_link_parameter_starts_no_link() {
    let base = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &format!("{base}/link/{{id}}"), "0..1")
        .args(["--next", "link", "-o", "out.csv", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_eq!(rows.len(), 1, "no page from inside a title: {rows:?}");
    assert_eq!(rows[0].extra, ["0", ""]);
}

#[test]
fn a_port_above_65535_in_the_url_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), "http://127.0.0.1:70000/{id}", "0..3")
        .args(["-o", "out.csv"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("70000"), "{err}");
    assert!(!dir.path().join("out.csv").exists());
}

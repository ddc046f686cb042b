//! Request shaping and captured data, end to end: what reaches the server (seen through echo
//! endpoints: `ringscrape serve`'s and aiohttp's) and what the CSV keeps (headers, bodies inline
//! or in files), from flags and from the config file; redirects against nginx.

use std::path::Path;

use crate::common::*;
use serde_json::Value;

/// The `[name, value]` pairs of an echoed request, names lower-cased.
fn echoed_headers(echo: &Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .map(|pair| {
            let name = pair[0].as_str().expect("name").to_ascii_lowercase();
            (name, pair[1].as_str().expect("value").to_string())
        })
        .collect()
}

fn has_header(headers: &[(String, String)], name: &str, value: &str) -> bool {
    headers.iter().any(|(n, v)| n == name && v == value)
}

/// Checks the rows of the shaped PUT run (from flags or from the config file).
fn assert_shaped_put_rows(rows: &[Row], authority: &str) {
    for row in rows {
        let id = row.id;
        assert_eq!((row.status, row.error.as_str()), (Some(200), ""), "{row:?}");
        let [etag, method, body] = row.extra.as_slice() else {
            panic!("three optional columns: {row:?}");
        };
        assert_eq!(etag, &format!("\"{id}\""));
        assert_eq!(method, "PUT");
        assert_eq!(row.bytes, body.len() as u64, "bytes counts the kept body");
        let echo: Value = serde_json::from_str(body).expect("echo JSON in the body column");
        assert_eq!(echo["method"], "PUT");
        assert_eq!(echo["target"], format!("/echo?id={id}"));
        assert_eq!(echo["body"], format!("{{\"k\":\"{id}\"}}"));
        let headers = echoed_headers(&echo);
        assert!(
            has_header(&headers, "authorization", &format!("Bearer tok-{id}")),
            "{headers:?}"
        );
        assert!(has_header(&headers, "x-from-file", "yes"), "{headers:?}");
        assert!(
            has_header(&headers, "x-second", &id.to_string()),
            "{headers:?}"
        );
        assert!(has_header(&headers, "user-agent", "agent/1"), "{headers:?}");
        assert!(has_header(&headers, "host", authority), "{headers:?}");
    }
}

fn authority(base: &str) -> &str {
    base.trim_start_matches("http://")
}

#[test]
fn method_headers_header_file_body_and_captures_reach_the_csv() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("hdrs.txt"),
        "X-From-File: yes\n\nX-Second: {id}\n",
    )
    .expect("write");
    let url = format!("{}/echo?id={{id}}", server.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        300,
        8,
        &[
            "-X",
            "PUT",
            "-H",
            "Authorization: Bearer tok-{id}",
            "-H",
            "@hdrs.txt",
            "-d",
            "{\"k\":\"{id}\"}",
            "--user-agent",
            "agent/1",
            "--capture-header",
            "ETag",
            "--capture-header",
            "x-echo-method",
            "--save-body",
        ],
    );
    assert_shaped_put_rows(&rows, authority(&server.base));
    let header = std::fs::read_to_string(dir.path().join("out.csv")).expect("csv");
    assert!(
        header.starts_with("id,status,bytes,latency_ms,attempts,error,etag,x-echo-method,body\n")
    );
}

#[test]
fn the_same_run_from_the_config_file() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("hdrs.txt"),
        "X-From-File: yes\nX-Second: {id}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("run.toml"),
        "method = 'PUT'\nheaders = ['Authorization: Bearer tok-{id}', '@hdrs.txt']\n\
         data = '{\"k\":\"{id}\"}'\nuser_agent = 'agent/1'\n\
         capture_header = ['etag', 'x-echo-method']\nsave_body = true\n",
    )
    .expect("write");
    let url = format!("{}/echo?id={{id}}", server.base);
    let rows = scrape_ok(dir.path(), &url, 0, 200, 8, &["--config", "run.toml"]);
    assert_shaped_put_rows(&rows, authority(&server.base));
}

#[test]
fn repeated_data_is_joined_with_ampersands_and_replaces_the_config_files() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tail.txt"), "c={id}").expect("write");
    std::fs::write(dir.path().join("run.toml"), "data = 'from=file'\n").expect("write");
    let url = format!("{}/echo?id={{id}}", server.base);
    let bodies = |extra: &[&str]| -> Vec<(u64, String)> {
        let rows = scrape_ok(
            dir.path(),
            &url,
            0,
            20,
            4,
            &[extra, &["--save-body"]].concat(),
        );
        rows.iter()
            .map(|row| {
                let echo: Value = serde_json::from_str(&row.extra[0]).expect("json");
                assert_eq!(echo["method"], "POST", "{row:?}");
                (row.id, echo["body"].as_str().expect("body").to_owned())
            })
            .collect()
    };
    // As curl joins its -d's: the pieces in order, @FILE's bytes in its place.
    for (id, body) in bodies(&["-d", "a=1", "-d", "b={id}", "--data", "@tail.txt"]) {
        assert_eq!(body, format!("a=1&b={id}&c={id}"));
    }
    for (_, body) in bodies(&["--config", "run.toml"]) {
        assert_eq!(body, "from=file");
    }
    // The command line's body replaces the file's, as any flag given there does.
    for (id, body) in bodies(&["--config", "run.toml", "-d", "cli={id}"]) {
        assert_eq!(body, format!("cli={id}"));
    }
}

#[test]
fn aiohttp_receives_the_method_headers_and_body() {
    let target = AiohttpTarget::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/echo?id={{id}}", target.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        200,
        8,
        &[
            "-d",
            "payload {id}",
            "-H",
            "X-Token: t-{id}",
            "--save-body",
            "--timeout",
            "5",
        ],
    );
    for row in &rows {
        assert_eq!(row.status, Some(200), "{row:?}");
        let echo: Value = serde_json::from_str(&row.extra[0]).expect("json");
        assert_eq!(echo["method"], "POST", "-d makes a POST");
        assert_eq!(echo["body"], format!("payload {}", row.id));
        let headers = echoed_headers(&echo);
        assert!(
            has_header(&headers, "x-token", &format!("t-{}", row.id)),
            "{headers:?}"
        );
        assert!(
            has_header(
                &headers,
                "user-agent",
                concat!("ringscrape/", env!("CARGO_PKG_VERSION"))
            ),
            "{headers:?}"
        );
    }
}

/// 256 bytes, every byte value once: not UTF-8.
fn blob() -> Vec<u8> {
    (0..=255u8).collect()
}

fn nginx_with_blob(dir: &Path) -> Nginx {
    std::fs::write(dir.join("blob.bin"), blob()).expect("write blob");
    Nginx::start(
        "",
        &format!(
            "location /bin {{ default_type application/octet-stream; add_header X-Id $arg_id; alias {}/blob.bin; }}\n\
             location /log {{ default_type application/json; return 200 '{{\"id\":$arg_id}}'; }}\n\
             location /r {{ return 301 /log?id=$arg_id; }}\n\
             location /twice {{ return 302 /r?id=$arg_id; }}",
            dir.display()
        ),
    )
}

#[test]
fn binary_bodies_are_never_mangled_inline_or_in_files() {
    use base64::Engine;
    let site = tempfile::tempdir().expect("tempdir");
    let nginx = nginx_with_blob(site.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/bin?id={{id}}", nginx.base);
    let b64 = base64::engine::general_purpose::STANDARD.encode(blob());

    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        100,
        8,
        &["--save-body", "--capture-header", "x-id"],
    );
    for row in &rows {
        assert_eq!(
            row.extra,
            vec![row.id.to_string(), format!("base64:{b64}")],
            "{row:?}"
        );
        assert_eq!(row.bytes, 256);
    }
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        100,
        8,
        &["--save-body", "--body-encoding", "base64"],
    );
    assert!(
        rows.iter().all(|r| r.extra == vec![b64.clone()]),
        "{:?}",
        rows[0]
    );

    let bodies = dir.path().join("bodies");
    let rows = scrape_ok(dir.path(), &url, 0, 100, 8, &["--bodies-dir", "bodies"]);
    for row in &rows {
        let relative = &row.extra[0];
        assert!(relative.ends_with(&format!("/{}", row.id)), "{relative}");
        assert_eq!(
            std::fs::read(bodies.join(relative)).expect("body file"),
            blob()
        );
    }
}

#[test]
fn redirects_are_rows_by_default_and_followed_on_request() {
    let site = tempfile::tempdir().expect("tempdir");
    let nginx = nginx_with_blob(site.path());
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");

    let rows = scrape_ok(
        dir.path(),
        &format!("{}/r?id={{id}}", nginx.base),
        0,
        100,
        8,
        &[],
    );
    assert!(
        rows.iter()
            .all(|r| r.status == Some(301) && r.attempts == 1),
        "{:?}",
        rows[0]
    );

    let rows = scrape_ok(
        dir.path(),
        &format!("{}/twice?id={{id}}", nginx.base),
        0,
        100,
        8,
        &["--follow-redirects", "2", "--save-body"],
    );
    for row in &rows {
        assert_eq!((row.status, row.attempts), (Some(200), 1), "{row:?}");
        assert_eq!(row.extra[0], format!("{{\"id\":{}}}", row.id));
    }
    // One hop short: the row keeps the last redirect.
    let rows = scrape_ok(
        dir.path(),
        &format!("{}/twice?id={{id}}", nginx.base),
        0,
        50,
        8,
        &["--follow-redirects", "1"],
    );
    assert!(rows.iter().all(|r| r.status == Some(301)), "{:?}", rows[0]);

    // To another origin: ringscrape serve's redirect fault, then nginx sends us to serve.
    let cross = Nginx::start(
        "",
        &format!(
            "location /away {{ return 307 {}/log?id=$arg_id; }}",
            server.base
        ),
    );
    let rows = scrape_ok(
        dir.path(),
        &format!("{}/away?id={{id}}", cross.base),
        0,
        200,
        8,
        &["--follow-redirects", "1"],
    );
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.bytes == demo_body_len(r.id)),
        "{:?}",
        rows.iter().find(|r| r.bytes != demo_body_len(r.id))
    );
}

#[test]
fn no_process_command_line_holds_a_header_from_a_file() {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("secret.txt"),
        "Authorization: Bearer SECRET-4c1d\n",
    )
    .expect("write");
    let url = server.url();
    let mut run = TestCommand::run(dir.path(), &url, "0..4000")
        .shards(2)
        .concurrency(16)
        .output("out.csv")
        .args(["-H", "@secret.txt"])
        .spawn();
    let workers = wait_for_workers(&run, 2, |_| true);
    for pid in workers.iter().copied().chain([run.id()]) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("SECRET-4c1d"),
            "process {pid}: {:?}",
            String::from_utf8_lossy(&cmdline)
        );
    }
    let _ = run.kill();
    let _ = run.wait();
}

#[test]
fn max_body_bounds_kept_bodies_over_http1_and_http2() {
    let site = tempfile::tempdir().expect("tempdir");
    let nginx = nginx_with_blob(site.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/bin?id={{id}}", nginx.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        50,
        8,
        &["--save-body", "--max-body", "100"],
    );
    for row in &rows {
        assert_eq!(
            (row.status, row.error.as_str()),
            (Some(200), "body-too-large"),
            "the status nginx sent is kept: {row:?}"
        );
        assert_eq!(row.extra, vec![String::new()], "no partial body kept");
    }
    let h2 = Nginx::start_listening(
        "http2",
        "",
        &format!(
            "location /bin {{ default_type application/octet-stream; alias {}/blob.bin; }}",
            site.path().display()
        ),
    );
    let url = format!("{}/bin?id={{id}}", h2.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        50,
        8,
        &["--http2", "--bodies-dir", "b", "--max-body", "255"],
    );
    assert!(
        rows.iter().all(|r| r.error == "body-too-large"),
        "{:?}",
        rows[0]
    );
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        50,
        8,
        &["--http2", "--bodies-dir", "b", "--max-body", "256"],
    );
    assert!(
        rows.iter().all(|r| r.status == Some(200) && r.bytes == 256),
        "{:?}",
        rows[0]
    );
}

#[test]
fn every_new_flag_works_from_the_config_file() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("keys.txt"), "a b\n\nc/d\n").expect("write");
    let redirect = Nginx::start(
        "",
        &format!(
            "location /go {{ return 302 {}/echo?k=$arg_k; }}",
            server.base
        ),
    );
    std::fs::write(
        dir.path().join("run.toml"),
        format!(
            "url = '{}/go?k={{id}}'\nids_file = 'keys.txt'\nfollow_redirects = 1\n\
             bodies_dir = 'bodies'\ncapture_header = ['x-echo-method']\noutput = 'out.csv'\n",
            redirect.base
        ),
    )
    .expect("write");
    let out = TestCommand::new(dir.path())
        .args(["run", "--config", "run.toml"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("out.csv")).expect("csv");
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.remove(0),
        "id,status,bytes,latency_ms,attempts,error,line,x-echo-method,body_path"
    );
    lines.sort();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("a b,200,") && lines[0].contains(",1,GET,"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("c/d,200,") && lines[1].contains(",3,GET,"),
        "{text}"
    );
}

#[test]
fn head_requests_read_no_body_whatever_the_length_says() {
    let site = tempfile::tempdir().expect("tempdir");
    let nginx = nginx_with_blob(site.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/bin?id={{id}}", nginx.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        500,
        8,
        &[
            "-X",
            "HEAD",
            "--capture-header",
            "content-length",
            "--timeout",
            "5",
        ],
    );
    for row in &rows {
        // The length of the body a GET would get, and none read: no hang, connection reused.
        assert_eq!(
            (row.status, row.bytes, row.attempts),
            (Some(200), 0, 1),
            "{row:?}"
        );
        assert_eq!(row.extra, vec!["256".to_string()], "{row:?}");
        assert!(row.latency_ms < 1000.0, "{row:?}");
    }
}

#[test]
fn a_body_from_a_file_expands_the_key_and_keeps_its_bytes() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("body.json"),
        "{\n  \"id\": {id},\n  \"tag\": \"é\"\n}\n",
    )
    .expect("write");
    let url = format!("{}/echo?id={{id}}", server.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        100,
        8,
        &["-d", "@body.json", "--save-body"],
    );
    for row in &rows {
        let echo: Value = serde_json::from_str(&row.extra[0]).expect("json");
        assert_eq!(echo["method"], "POST");
        assert_eq!(
            echo["body"],
            format!("{{\n  \"id\": {},\n  \"tag\": \"é\"\n}}\n", row.id)
        );
    }
}

#[test]
fn the_largest_body_arrives_whole_and_a_larger_one_is_a_usage_error() {
    // 8 MiB, the most `-d` sends: more than a loopback socket takes in one write, so each
    // request is sent partly straight to the socket and the rest through the runtime as the
    // server reads; and the body travels to the workers in the spec frame.
    let body: Vec<u8> = (0u32..8 << 20)
        .map(|i| match (i.wrapping_mul(2_654_435_761) >> 24) as u8 {
            b'{' => b'x',
            b => b,
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).expect("write");
    let hashed = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
        ])
        .arg(&file)
        .output()
        .expect("python3");
    let sha256 = String::from_utf8_lossy(&hashed.stdout).trim().to_owned();
    assert_eq!(sha256.len(), 64, "{hashed:?}");
    let target = AiohttpTarget::start();
    let url = format!("{}/digest?id={{id}}", target.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        6,
        3,
        &["-d", "@body.bin", "--save-body", "--timeout", "60"],
    );
    for row in &rows {
        assert_eq!(row.status, Some(200), "{row:?}");
        let seen: Value = serde_json::from_str(&row.extra[0]).expect("json");
        assert_eq!(seen["length"], body.len(), "{row:?}");
        assert_eq!(seen["sha256"], sha256.as_str(), "{row:?}");
    }
    // One byte more: refused before anything starts, in one line.
    let mut larger = body;
    larger.push(b'x');
    std::fs::write(&file, &larger).expect("write");
    let out = TestCommand::new(dir.path())
        .args(["run", "-u", &url, "--ids", "0..3", "-d", "@body.bin"])
        .args(["-o", "larger.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "error: --data: the body is 8388609 bytes; ringscrape sends a body of at most 8 MiB"
        ),
        "{err}"
    );
    assert!(!dir.path().join("larger.csv").exists());
}

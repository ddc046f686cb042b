//! `/echo` (and `/echo/…`) on the demo target: answers with what it received, so tests can check what was
//! sent. The body is JSON — `{"method", "target", "headers": [[name, value], …], "body"}` — with
//! a body that is not UTF-8 given as `base64:…`, the way the CSV's text mode writes one. The
//! answer also carries `x-echo-method` and, for `?id=N`, `etag: "N"`, to capture.

use base64::Engine;

/// The echo answer's body and extra header lines for one whole request (head and body), or
/// `None` if it does not parse (it did once, to be framed).
pub fn echo(request: &[u8], id: Option<u64>) -> Option<(Vec<u8>, String)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(request) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let body = &request[head_len..];
    let body = match std::str::from_utf8(body) {
        Ok(text) => text.to_string(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(body)
        ),
    };
    let pairs: Vec<[String; 2]> = parsed
        .headers
        .iter()
        .map(|h| {
            [
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            ]
        })
        .collect();
    let method = parsed.method.unwrap_or("");
    let json = serde_json::json!({
        "method": method,
        "target": parsed.path.unwrap_or(""),
        "headers": pairs,
        "body": body,
    });
    let mut extra = format!("x-echo-method: {method}\r\n");
    if let Some(id) = id {
        extra += &format!("etag: \"{id}\"\r\n");
    }
    Some((json.to_string().into_bytes(), extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_method_target_headers_and_body() {
        let request =
            b"POST /echo?id=3 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n\xff\x00";
        let (body, extra) = echo(request, Some(3)).expect("parses");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["method"], "POST");
        assert_eq!(json["target"], "/echo?id=3");
        assert_eq!(json["headers"][1], serde_json::json!(["X-A", "1"]));
        assert_eq!(json["body"], "base64:/wA=");
        assert_eq!(extra, "x-echo-method: POST\r\netag: \"3\"\r\n");
    }
}

//! What each request sends (`-u`, `-X`, `-H`, `-d`, `--user-agent`), what each row holds (the
//! schema: captured headers, bodies, extracts) and how a chain of pages goes on (`--next`).

use crate::cli::RunArgs;
use crate::extract::ExtractSpec;
use crate::job::{Job, URL_COLUMN};
use crate::model::{BodyColumn, BodyEncoding, Pages, Schema};
use crate::nodes::{self, Node};
use crate::output::bodies;
use crate::request::{MAX_BODY_LEN, RequestSpec};

use super::error::ConfigError;

/// The optional columns: `line` for keys from a file or `index` for a product, the key files'
/// columns, captured headers (checked, lower case), extracted fields (compiled once to check
/// them), then the body or its path; no two of one name.
pub(super) fn schema(
    args: &RunArgs,
    node: Option<&Node>,
    job: &Job,
) -> Result<Schema, ConfigError> {
    let mut capture_headers: Vec<String> = Vec::new();
    for name in &args.capture_header {
        let header = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ConfigError::CaptureName(name.clone()))?;
        capture_headers.push(header.as_str().to_string());
    }
    let extract = args
        .extract
        .iter()
        .map(|text| ExtractSpec::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let body = if args.save_body {
        BodyColumn::Inline(match args.body_encoding.as_deref() {
            Some("base64") => BodyEncoding::Base64,
            _ => BodyEncoding::Text,
        })
    } else if let Some(dir) = &args.bodies_dir {
        let dir = nodes::expand_path("bodies-dir", dir, node)?;
        bodies::check_writable(&dir).map_err(|e| ConfigError::BodiesDir(dir.clone(), e))?;
        BodyColumn::Files(dir)
    } else {
        BodyColumn::None
    };
    let pages = pages_of(args)?;
    let schema = Schema {
        items: job.row_items(),
        pages,
        keys: job.columns(),
        capture_headers,
        extract,
        body,
    };
    schema.check()?;
    Ok(schema)
}

/// `--next` (checked as an `--extract` expression unless `link`), `--next-param`, `--max-pages`.
pub(super) fn pages_of(args: &RunArgs) -> Result<Option<Pages>, ConfigError> {
    let Some(next) = &args.next else {
        return Ok(None);
    };
    if next != "link" {
        let spec = ExtractSpec {
            name: "next".into(),
            expr: next.clone(),
        };
        crate::extract::Extractor::compile(std::slice::from_ref(&spec))
            .map_err(|e| ConfigError::Next(next.clone(), e.to_string()))?;
    }
    if args.max_pages == Some(0) {
        return Err(ConfigError::Zero("max-pages", 0));
    }
    Ok(Some(Pages {
        next: next.clone(),
        param: args.next_param.clone(),
        max_pages: args.max_pages,
    }))
}

/// The request flags, with `@FILE` arguments read.
pub(super) fn request_spec(args: &RunArgs) -> Result<RequestSpec, ConfigError> {
    // `--urls` alone: each line is the whole URL.
    let whole_url = args
        .items
        .urls
        .as_ref()
        .map(|_| format!("{{{URL_COLUMN}}}"));
    let url = args
        .url
        .clone()
        .or(whole_url)
        .ok_or(ConfigError::MissingUrl)?;
    let mut headers = Vec::with_capacity(args.headers.len());
    for header in &args.headers {
        match header.strip_prefix('@') {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::ReadArg("header", path.into(), e))?;
                headers.extend(
                    text.lines()
                        .map(str::trim_end)
                        .filter(|line| !line.is_empty())
                        .map(String::from),
                );
            }
            None => headers.push(header.clone()),
        }
    }
    let body = body_of(&args.data)?;
    if let Some(body) = body.as_ref().filter(|b| b.len() > MAX_BODY_LEN) {
        return Err(ConfigError::BodyTooLarge(body.len()));
    }
    Ok(RequestSpec {
        url,
        method: args.method.clone(),
        headers,
        body,
        user_agent: args
            .user_agent
            .clone()
            .unwrap_or_else(|| concat!("ringscrape/", env!("CARGO_PKG_VERSION")).into()),
        accept_encoding: (!args.raw_body).then(|| crate::request::ACCEPT_ENCODING.into()),
        key_columns: Vec::new(),
    })
}

/// The body `-d` gives: each piece its text or, as `@FILE`, its file's bytes; pieces joined with
/// `&`, as curl joins its `-d`s (a repeated `-d` once silently kept only the last).
fn body_of(pieces: &[String]) -> Result<Option<Vec<u8>>, ConfigError> {
    if pieces.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    for (at, piece) in pieces.iter().enumerate() {
        if at > 0 {
            body.push(b'&');
        }
        match piece.strip_prefix('@') {
            Some(path) => body.extend(
                std::fs::read(path).map_err(|e| ConfigError::ReadArg("data", path.into(), e))?,
            ),
            None => body.extend_from_slice(piece.as_bytes()),
        }
    }
    Ok(Some(body))
}

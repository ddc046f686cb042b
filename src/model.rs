//! The data every stage shares, below all of them: the [`Record`] a worker makes for each item,
//! why a request failed ([`ErrorKind`]), the row [`Schema`] (which columns, in which order) and
//! what counts as success, the per-request limits and retry policy a run hands its workers, and
//! the [`Batch`] that carries records to the writer.
//!
//! Nothing here does I/O; `wire` encodes these types, `output` formats them, `worker` fills them.

use std::time::Duration;

/// Why a request produced no response, as written in the CSV `error` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Could not open a connection (refused, unreachable, connect timeout).
    Connect = 1,
    /// The request's deadline passed.
    Timeout = 2,
    /// The connection was reset or broke while sending or receiving.
    Reset = 3,
    /// The server closed the connection before a full response.
    Closed = 4,
    /// The server answered something that is not valid HTTP.
    Protocol = 5,
    /// TLS handshake or certificate failure.
    Tls = 6,
    /// The body exceeded the configured maximum.
    BodyTooLarge = 7,
    /// Any other I/O error.
    Io = 8,
    /// The request could not be built from the template for this item (e.g. a header value
    /// with a line break once `{id}` is filled in). Never retried: it would fail the same way.
    Request = 9,
    /// The body's `Content-Encoding` (gzip, deflate, br, zstd) did not decode: a corrupt or
    /// cut stream. Not retried.
    Decode = 10,
    /// The target's host name did not resolve (no address, or the resolver failed).
    Dns = 11,
    /// The proxy failed: refused or timed out, `407`, a `CONNECT` answered with no 2xx, a
    /// SOCKS5 failure. Never blamed on the target.
    Proxy = 12,
    /// The worker fetching it died while it was the one item in flight (a jq filter that
    /// recursed without end, say): the answer killed the process, so it is not known. Written
    /// by the supervisor; never retried.
    Crash = 13,
    /// `--next` led back to a page this item's chain had already fetched: the chain ends here
    /// rather than going round for ever.
    Loop = 14,
    /// `--robots`: the host's robots.txt forbids this URL to the user agent sent (or could not
    /// be fetched for a server error, which forbids the whole host). Never requested, never
    /// retried.
    Robots = 15,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Closed,
        ErrorKind::Protocol,
        ErrorKind::Tls,
        ErrorKind::BodyTooLarge,
        ErrorKind::Io,
        ErrorKind::Request,
        ErrorKind::Decode,
        ErrorKind::Dns,
        ErrorKind::Proxy,
        ErrorKind::Crash,
        ErrorKind::Loop,
        ErrorKind::Robots,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Tls => "tls",
            ErrorKind::BodyTooLarge => "body-too-large",
            ErrorKind::Io => "io",
            ErrorKind::Request => "request",
            ErrorKind::Decode => "decode",
            ErrorKind::Dns => "dns",
            ErrorKind::Proxy => "proxy",
            ErrorKind::Crash => "crash",
            ErrorKind::Loop => "loop",
            ErrorKind::Robots => "robots",
        }
    }

    pub fn parse(text: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The target could not be reached or did not answer at all (what `--abort-after` counts):
    /// as opposed to an answer that was wrong, too large, or a request that could not be built.
    pub fn is_transport(self) -> bool {
        matches!(
            self,
            ErrorKind::Connect
                | ErrorKind::Dns
                | ErrorKind::Proxy
                | ErrorKind::Timeout
                | ErrorKind::Reset
                | ErrorKind::Tls
        )
    }

    /// Position in [`ErrorKind::ALL`], for per-kind counters.
    pub fn slot(self) -> usize {
        self as usize - 1
    }

    /// The kinds counted in `counts` (indexed by [`ErrorKind::slot`]) with their names, those
    /// counted at least once.
    pub fn named_counts(counts: &[u64]) -> impl Iterator<Item = (String, serde_json::Value)> + '_ {
        Self::ALL
            .into_iter()
            .filter_map(|kind| match counts.get(kind.slot()) {
                Some(&n) if n > 0 => Some((kind.as_str().to_string(), n.into())),
                _ => None,
            })
    }

    /// The kind with wire code `code` (its discriminant).
    pub fn from_code(code: u8) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|kind| *kind as u8 == code)
    }
}

/// The columns every CSV starts with, in this order; optional columns follow them.
pub const FIXED_COLUMNS: [&str; 6] = ["id", "status", "bytes", "latency_ms", "attempts", "error"];

/// True when a row is an answer worth keeping: a 2xx status and no error. `--resume
/// --retry-failed` fetches again every item for which this is false.
pub fn is_success(status: Option<u16>, error: Option<ErrorKind>) -> bool {
    error.is_none() && status.is_some_and(|s| (200..300).contains(&s))
}

/// How a kept body is written into the `body` column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BodyEncoding {
    /// As text when it is valid UTF-8; otherwise base64 behind the prefix `base64:`, so that no
    /// byte is ever mangled.
    #[default]
    Text,
    /// Always base64 (standard alphabet, padded), no prefix.
    Base64,
}

/// Where kept bodies go.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BodyColumn {
    /// Bodies are counted, not kept.
    #[default]
    None,
    /// In a `body` column of the CSV.
    Inline(BodyEncoding),
    /// Each in its own file under this directory; a `body_path` column holds the relative path.
    Files(std::path::PathBuf),
}

/// `--next`: how an item's answer leads to its next page, and when a chain ends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pages {
    /// `link` (the `rel="next"` of a `Link` header), or an `--extract` expression
    /// (`/json/pointer`, `jq:…`, `re:…`) of the next page's URL or cursor.
    pub next: String,
    /// `--next-param`: the next is a cursor, set as this query parameter of the item's first URL.
    pub param: Option<String>,
    /// `--max-pages`: pages fetched per item at most.
    pub max_pages: Option<u32>,
}

impl Pages {
    /// True when `next` is read from the `Link` header rather than the body.
    pub fn by_link(&self) -> bool {
        self.next == "link"
    }

    /// Whether a chain whose page `page` gave `next` (empty: none) goes on, by count and next
    /// alone (a failed page or a loop ends it too).
    pub fn goes_on(&self, page: u32, next: &[u8]) -> bool {
        !next.is_empty() && self.max_pages.is_none_or(|max| page + 1 < max)
    }
}

/// An item whose chain of pages goes on (`--resume` found its first pages written): from page
/// `page`, at what the page before gave (a URL, or a cursor with `--next-param`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Continuation {
    pub index: u64,
    pub page: u32,
    pub next: String,
}

pub use crate::job::row::{Items, KeyColumn, KeyKind};

/// The columns of a run's rows: the fixed ones, then `line` (keys from a file) or `index` (a
/// product of `--ids` and key files), then the key files' columns, then the captured headers
/// (lower-case names, in the order given), then the extracted fields (in the order given), then
/// `body` or `body_path`. The one owner of column names: [`Schema::check`] refuses two columns
/// of one name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Schema {
    #[serde(default)]
    pub items: Items,
    /// The key files' columns, file after file.
    #[serde(default)]
    pub keys: Vec<KeyColumn>,
    /// `--next`: rows are pages, with `page` and `next` columns after the key columns.
    #[serde(default)]
    pub pages: Option<Pages>,
    pub capture_headers: Vec<String>,
    #[serde(default)]
    pub extract: Vec<crate::extract::ExtractSpec>,
    pub body: BodyColumn,
}

/// Two columns of one name, and the flags that asked for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{second}: column `{name}` is also written by {first}; give it another name")]
pub struct ColumnClash {
    pub name: String,
    pub first: String,
    pub second: String,
}

impl Schema {
    /// The column that identifies a row's item: `line` or `index` when there is one, else `id`.
    pub fn index_column(&self) -> usize {
        match self.items.index_column() {
            Some(_) => FIXED_COLUMNS.len(),
            None => 0,
        }
    }

    /// The id of the item at `index` (the `id` column of a range or a product).
    pub fn id_of(&self, index: u64) -> u64 {
        self.items.id_of(index)
    }

    /// Every column name, in order.
    pub fn columns(&self) -> Vec<String> {
        self.columns_by_flag()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Every column name, in order, with the flag (or reason) that puts it there.
    fn columns_by_flag(&self) -> Vec<(String, String)> {
        let mut columns: Vec<(String, String)> = FIXED_COLUMNS
            .iter()
            .map(|c| {
                (
                    c.to_string(),
                    "ringscrape itself (a fixed column)".to_string(),
                )
            })
            .collect();
        if let Some((name, flag)) = self.items.index_column() {
            columns.push((name.into(), flag.into()));
        }
        for key in &self.keys {
            columns.push((key.name.clone(), format!("--keys {}", key.file)));
        }
        if self.pages.is_some() {
            columns.push(("page".into(), "--next (its page column)".into()));
            columns.push(("next".into(), "--next (its next column)".into()));
        }
        for name in &self.capture_headers {
            columns.push((name.clone(), format!("--capture-header {name}")));
        }
        for spec in &self.extract {
            let flag = format!("--extract {}={}", spec.name, spec.expr);
            columns.push((spec.name.clone(), flag));
        }
        match self.body {
            BodyColumn::None => {}
            BodyColumn::Inline(_) => columns.push(("body".into(), "--save-body".into())),
            BodyColumn::Files(_) => columns.push(("body_path".into(), "--bodies-dir".into())),
        }
        columns
    }

    /// Refuses a schema with two columns of one name, naming both flags.
    pub fn check(&self) -> Result<(), ColumnClash> {
        let columns = self.columns_by_flag();
        for (at, (name, flag)) in columns.iter().enumerate() {
            if let Some((_, first)) = columns[..at].iter().find(|(other, _)| other == name) {
                return Err(ColumnClash {
                    name: name.clone(),
                    first: first.clone(),
                    second: flag.clone(),
                });
            }
        }
        Ok(())
    }

    /// The `page` and `next` columns, when rows are pages.
    pub fn page_columns(&self) -> Option<(usize, usize)> {
        self.pages.as_ref()?;
        let at = FIXED_COLUMNS.len() + usize::from(self.index_column() != 0) + self.keys.len();
        Some((at, at + 1))
    }

    /// True when the next page's link is in the body (not a header).
    fn next_in_body(&self) -> bool {
        self.pages.as_ref().is_some_and(|p| !p.by_link())
    }

    /// True when workers must read body bytes: to keep them, or to extract from them.
    pub fn reads_body(&self) -> bool {
        self.keeps_body() || !self.extract.is_empty() || self.next_in_body()
    }

    /// True when workers must keep body bytes.
    pub fn keeps_body(&self) -> bool {
        self.body != BodyColumn::None
    }

    /// True when workers must hold whole bodies in memory: inline in the row, or to extract
    /// from them. (`--bodies-dir` alone writes them to their files as they arrive.)
    pub fn keeps_body_in_memory(&self) -> bool {
        matches!(self.body, BodyColumn::Inline(_))
            || !self.extract.is_empty()
            || self.next_in_body()
    }
}

/// The outcome for one item (or one page of an item's chain): exactly one per requested item
/// (and page) ends up as one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The item's index in the job: the id itself for an id range.
    pub index: u64,
    /// `--next`: the page of the item's chain (0 first).
    pub page: u32,
    /// `--next`: more pages of the item follow this one (its chain is not done).
    pub more: bool,
    pub status: Option<u16>,
    pub bytes: u64,
    pub latency_us: u32,
    pub attempts: u16,
    pub error: Option<ErrorKind>,
    /// The optional columns' values, as the [`Schema`] lists them; empty for an error row.
    pub captured: Captured,
}

/// What a record keeps of the answer besides status and size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// One value per captured header (absent: the answer did not have it).
    pub headers: Vec<Option<Vec<u8>>>,
    /// The body (inline bodies), or the body's path relative to the bodies directory.
    pub body: Option<Vec<u8>>,
    /// The item's key when it is not the index itself (keys from a file); the `id` column.
    pub key: Option<Vec<u8>>,
    /// One value per `--extract` (absent: a miss).
    pub extracted: Vec<Option<Vec<u8>>>,
    /// One value per key file column (absent: null, or a record that did not read); on error
    /// rows too, so that every row says what it was made from.
    pub keys: Vec<Option<Vec<u8>>>,
    /// `--next`: what the page gave for the next one (the resolved URL, or the cursor);
    /// absent on a chain's last page.
    pub next: Option<Vec<u8>>,
}

impl Record {
    pub fn succeeded(&self) -> bool {
        is_success(self.status, self.error)
    }

    /// Bytes held by the captured values (what batching must bound besides the row count).
    pub fn captured_bytes(&self) -> usize {
        let headers: usize = self.captured.headers.iter().flatten().map(Vec::len).sum();
        let extracted: usize = self.captured.extracted.iter().flatten().map(Vec::len).sum();
        let keys: usize = self.captured.keys.iter().flatten().map(Vec::len).sum();
        let next = self.captured.next.as_ref().map_or(0, Vec::len);
        headers + extracted + keys + next + self.captured.body.as_ref().map_or(0, Vec::len)
    }
}

/// Per-request deadlines and size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestLimits {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_body_bytes: usize,
    /// Bytes of bodies a worker holds in memory at once (`--body-memory`).
    pub body_memory_bytes: usize,
}

/// When to try an item again (see `worker::schedule::retry` for the decision itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub base: Duration,
    pub cap: Duration,
    pub max_retry_after: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_have_stable_names_and_codes() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
            assert_eq!(ErrorKind::from_code(kind as u8), Some(kind));
            assert_eq!(ErrorKind::ALL[kind.slot()], kind);
        }
        assert_eq!(ErrorKind::parse("nope"), None);
    }

    #[test]
    fn a_clash_of_column_names_names_both_flags() {
        let extract = |name: &str| crate::extract::ExtractSpec {
            name: name.into(),
            expr: "/a".into(),
        };
        let mut schema = Schema {
            items: Items::Lines,
            capture_headers: vec!["line".into()],
            ..Schema::default()
        };
        let clash = schema.check().expect_err("two line columns");
        assert_eq!(
            clash.to_string(),
            "--capture-header line: column `line` is also written by --ids-file (its line column); give it another name"
        );
        schema.capture_headers = vec!["etag".into()];
        schema.extract = vec![extract("name"), extract("etag")];
        let clash = schema.check().expect_err("extract named like a capture");
        assert_eq!(
            (clash.first.as_str(), clash.second.as_str()),
            ("--capture-header etag", "--extract etag=/a")
        );
        schema.extract = vec![extract("status")];
        assert!(
            schema
                .check()
                .expect_err("fixed")
                .to_string()
                .contains("by ringscrape itself (a fixed column)")
        );
        schema.extract = vec![extract("body")];
        schema.body = BodyColumn::Inline(BodyEncoding::Text);
        assert!(
            schema
                .check()
                .expect_err("body")
                .to_string()
                .starts_with("--save-body: column `body`")
        );
        schema.extract = vec![extract("name")];
        assert_eq!(schema.check(), Ok(()));
        let key = |name: &str| KeyColumn {
            name: name.into(),
            kind: KeyKind::Text,
            file: "users.csv".into(),
        };
        let product = Schema {
            items: Items::Product { per_id: 365 },
            keys: vec![key("user"), key("index")],
            ..Schema::default()
        };
        assert_eq!(
            product.check().expect_err("index twice").to_string(),
            "--keys users.csv: column `index` is also written by --ids with --keys (the index column); give it another name"
        );
        assert_eq!(product.id_of(365 * 7 + 364), 7);
        let keys = Schema {
            keys: vec![key("id")],
            ..Schema::default()
        };
        assert!(keys.check().is_err(), "a key column named id");
        assert_eq!(
            schema.columns()[6..],
            ["line", "etag", "name", "body"].map(String::from)
        );
    }

    #[test]
    fn success_is_a_2xx_without_error() {
        assert!(is_success(Some(204), None));
        assert!(!is_success(Some(304), None));
        assert!(!is_success(None, Some(ErrorKind::Timeout)));
        assert!(!is_success(Some(200), Some(ErrorKind::BodyTooLarge)));
    }
}

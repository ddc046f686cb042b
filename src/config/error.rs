//! What `config::resolve` refuses, each a one-line message naming the flag and the fix (exit 2
//! where it is the user's input).

use std::path::PathBuf;

use crate::document;
use crate::ids::IdRangeError;
use crate::job::{self, RecordFileError};
use crate::nodes::NodeError;
use crate::output::Format;
use crate::output::NotOurs;
use crate::request::RequestError;
use crate::tls::TlsError;

/// A body limit beyond this is a typo: bodies are held in memory, one per in-flight request.
pub(super) const MAX_BODY_LIMIT: u64 = 1 << 32;
/// A body kept in the CSV travels in one frame, whose length is 32 bits.
pub(super) const MAX_INLINE_BODY: u64 = 1 << 30;
/// Attempts are counted in 16 bits on the wire.
pub(super) const MAX_RETRIES: u32 = 1000;
/// Far above what one core can drive; a typo guard, the fd limit check does the real work.
pub(super) const MAX_CONCURRENCY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("--url is required (or `url` in the config file)")]
    MissingUrl,
    #[error("--ids, --ids-file, --keys or --urls is required, e.g. --ids 0..1000000")]
    MissingIds,
    #[error(
        "--keys {0}: which format? name it .csv, .tsv, .jsonl or .parquet (or a directory of Parquet parts)"
    )]
    KeysFormat(PathBuf),
    #[error("--keys {0}: {1}")]
    Keys(PathBuf, RecordFileError),
    #[error("--urls {0}: {1}")]
    Urls(PathBuf, RecordFileError),
    #[error("--auth-command: empty; give the command that prints `Name: value` header lines")]
    EmptyAuthCommand,
    #[error("--next {0}: {1} (give link, /json/pointer, jq:FILTER or re:REGEX)")]
    Next(String, String),
    #[error("--keys -: standard input can be read once")]
    KeysStdinTwice,
    #[error(transparent)]
    TooManyItems(#[from] job::TooManyItems),
    #[error("--ids-file {0}: {1}")]
    IdsFile(PathBuf, std::io::Error),
    #[error("--ids-file {0}: no keys in it (every line is empty)")]
    NoKeys(PathBuf),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Placeholder(#[from] crate::placeholders::PlaceholderError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("--{0} @{1}: {2}")]
    ReadArg(&'static str, PathBuf, std::io::Error),
    #[error(
        "--data: the body is {0} bytes; ringscrape sends a body of at most 8 MiB (8388608 bytes)"
    )]
    BodyTooLarge(usize),
    #[error("--capture-header {0:?}: not a header name")]
    CaptureName(String),
    #[error(transparent)]
    Columns(#[from] crate::model::ColumnClash),
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),
    #[error(
        "--format {flag}: {name} is a directory of part files; give it a path with -o, not stdout",
        flag = .0.flag(), name = .0.name()
    )]
    PartsOnStdout(&'static dyn Format),
    #[error(
        "--http2 with a host that varies per item (a placeholder in the URL's host, or --urls): each host gets a connection of its own, over HTTP/1.1; drop --http2"
    )]
    Http2PerHost,
    #[error(
        "--http2 with --header {0}: a connection-specific header, which HTTP/2 forbids (RFC 9113 §8.2.2); leave it out"
    )]
    Http2ConnectionHeader(String),
    #[error("--auth-refresh {0}: at least 1 s (the command runs again on 401s besides)")]
    AuthRefreshTooShort(String),
    #[error(
        "--output {0}: is a directory; give the file for the rows (or --format parquet for a directory of parts)"
    )]
    OutputIsDir(PathBuf),
    #[error("--output {0}: {1}")]
    OutputKind(PathBuf, &'static str),
    #[error(
        "--arrow-copy -: -o - already writes the rows to stdout; name a file for one of them (or -o - --format arrow alone)"
    )]
    ArrowCopyOnStdout,
    #[error("--arrow-copy {0}: is the output (-o) itself; name another file, or - for stdout")]
    ArrowCopyIsOutput(PathBuf),
    #[error("--arrow-copy {0}: is a directory; name a file, or - for stdout")]
    ArrowCopyIsDir(PathBuf),
    #[error(
        "--output {path}: the name says {named} but --format {given} writes {written}; name it {suggested}, or drop --format",
        named = .named.name(), given = .given.extension(), written = .given.name()
    )]
    FormatAgainstName {
        path: PathBuf,
        named: &'static dyn Format,
        given: &'static dyn Format,
        suggested: String,
    },
    #[error(
        "--max-body {0} with --save-body: at most {MAX_INLINE_BODY} bytes (use --bodies-dir for larger bodies)"
    )]
    InlineBody(u64),
    #[error("--bodies-dir {0}: cannot write there: {1}")]
    BodiesDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Ids(#[from] IdRangeError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("--{0} {1}: must be at least 1")]
    Zero(&'static str, usize),
    #[error("--concurrency {0}: more than {MAX_CONCURRENCY} in-flight requests per worker")]
    TooMuchConcurrency(usize),
    #[error("--{0} {1}: must be a positive number of seconds")]
    BadDuration(&'static str, f64),
    #[error("--output {0}: directory {1} does not exist")]
    NoOutputDir(PathBuf, PathBuf),
    #[error("--output {0}: file exists; pass --resume to complete it or --overwrite to replace it")]
    OutputExists(PathBuf),
    #[error("--output {0} --overwrite: {1}")]
    NotOurs(PathBuf, NotOurs),
    #[error("--resume needs --output FILE (it reads the rows already written)")]
    ResumeStdout,
    #[error("--max-body {0}: must be between 1 and {MAX_BODY_LIMIT} bytes")]
    MaxBody(u64),
    #[error("--{0} {1}: {expected}", expected = crate::listen_addr::EXPECTED)]
    ListenAddr(&'static str, String),
    #[error("--{0} {1}: directory {2} does not exist")]
    ReportDir(&'static str, PathBuf, PathBuf),
    #[error("--{0} {1}: {2}")]
    Unwritable(&'static str, PathBuf, document::Unwritable),
    #[error(transparent)]
    Clash(#[from] document::Clash),
    #[error("--rate {0}: must be a number of requests per second from 0.001 to 1e9")]
    Rate(f64),
    #[error("--host-rate {0}: must be a number of requests per second from 0.001 to 1e9")]
    HostRate(f64),
    #[error("--retries {0}: at most {MAX_RETRIES}")]
    Retries(u32),
    #[error("{0}")]
    RetryFailed(String),
}

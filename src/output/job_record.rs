//! What an output was written from, kept beside it as `.NAME.job.json` (JSON, versioned), so
//! that `--resume` refuses to append rows of another job to it. The record names the key files
//! (`--ids-file`, `--keys`): each one's size, record count and a SHA-256 of its first
//! [`HEAD_BYTES`] — a key file changed between a run and its resume (a line inserted) would
//! otherwise shift every index, fetching some items twice and others never. And it names the
//! request and the rows ([`JobRequest`]: URL, method, header and body templates, items, extracts,
//! captured headers, `--next`, format), so that a resume with a corrected URL does not keep the
//! first run's `dns` rows as done. Secrets are not kept: a credential header (`Authorization`,
//! `Cookie`…) or one read from `-H @FILE` by its name only, the body by its SHA-256. What may
//! change without harm (concurrency, shards, rate, timeouts, trust, proxies…) is not recorded.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::Format;
use crate::ids::IdRange;
use crate::model::Schema;
use crate::redact::{is_credential, redact_url};
use crate::request::RequestSpec;

/// Bytes at the start of a key file that its identity hashes (with its size and record count,
/// enough to tell an edited file from the same one without reading all of it again).
pub const HEAD_BYTES: u64 = 1 << 20;

/// The version this build writes; a record of another version is not compared.
const VERSION: u32 = 1;

/// What a run's output was written from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub version: u32,
    /// The key files, in the order the job reads them.
    pub key_files: Vec<KeyFileIdentity>,
    /// The request and the rows; absent in a record of an earlier build (then not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<JobRequest>,
}

/// The parts of a job that decide what its rows hold: a resume that changes one of them would
/// keep rows of another job as done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// `--url`, as a template, its user and password (if any) left out.
    pub url: String,
    /// The method sent (GET, or POST with a body, when none was given).
    pub method: String,
    /// `-H` in order, as templates: `Name: value`, or `Name` alone for a secret one (a credential
    /// header, or one read from `-H @FILE`).
    pub headers: Vec<String>,
    /// SHA-256 of the body template (`-d`), in hex: it may hold a password.
    pub body_sha256: Option<String>,
    /// The items (`--ids`, or the key files' records; this node's slice).
    pub items: String,
    /// `--extract NAME=EXPR`, in order.
    pub extracts: Vec<String>,
    /// `--capture-header`, lower case, in order.
    pub captures: Vec<String>,
    /// `--next` (and `--next-param`).
    pub next: Option<String>,
    /// `--format`.
    pub format: String,
}

impl JobRequest {
    /// The record of `request` (after `-H @FILE` and `-d @FILE` were read; `typed_headers` are
    /// the `-H` values given as text, the others came from files) writing `schema`'s rows in
    /// `format` for `items`.
    pub fn new(
        request: &RequestSpec,
        typed_headers: &[String],
        schema: &Schema,
        format: &dyn Format,
        items: IdRange,
    ) -> JobRequest {
        let headers = request
            .headers
            .iter()
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
                // Header names are case-insensitive and the space after the colon is not part
                // of the value: `x-a:1` is the `X-A: 1` of the first run.
                let name = name.trim().to_ascii_lowercase();
                if is_credential(&name) || !typed_headers.contains(line) {
                    name
                } else {
                    format!("{name}: {}", value.trim())
                }
            })
            .collect();
        let method = request.method.clone().unwrap_or_else(|| {
            if request.body.is_some() {
                "POST"
            } else {
                "GET"
            }
            .to_string()
        });
        JobRequest {
            url: redact_url(&request.url),
            method,
            headers,
            body_sha256: request.body.as_deref().map(sha256_hex),
            items: items.to_string(),
            extracts: schema
                .extract
                .iter()
                .map(|e| format!("{}={}", e.name, e.expr))
                .collect(),
            captures: schema.capture_headers.clone(),
            next: schema.pages.as_ref().map(|pages| match &pages.param {
                Some(param) => format!("{} (--next-param {param})", pages.next),
                None => pages.next.clone(),
            }),
            format: format.name().to_string(),
        }
    }

    /// What differs from `kept`, the first difference in words; `None` when nothing does.
    fn differs_from(&self, kept: &JobRequest) -> Option<String> {
        let list = |items: &[String]| {
            if items.is_empty() {
                "none".to_string()
            } else {
                items.join(", ")
            }
        };
        let maybe = |item: &Option<String>| item.clone().unwrap_or_else(|| "none".into());
        let body = |hash: &Option<String>| match hash {
            Some(_) => "a body",
            None => "no body",
        };
        let parts = [
            ("the URL", kept.url.clone(), self.url.clone()),
            ("the method", kept.method.clone(), self.method.clone()),
            ("-H", list(&kept.headers), list(&self.headers)),
            ("the range of items", kept.items.clone(), self.items.clone()),
            ("--extract", list(&kept.extracts), list(&self.extracts)),
            (
                "--capture-header",
                list(&kept.captures),
                list(&self.captures),
            ),
            ("--next", maybe(&kept.next), maybe(&self.next)),
            ("the format", kept.format.clone(), self.format.clone()),
        ];
        if let Some((what, then, now)) = parts.into_iter().find(|(_, then, now)| then != now) {
            return Some(format!("{what} differs ({then} then, {now} now)"));
        }
        if kept.body_sha256 != self.body_sha256 {
            let (then, now) = (body(&kept.body_sha256), body(&self.body_sha256));
            return Some(if then == now {
                "the body (-d) differs".to_string()
            } else {
                format!("the body (-d) differs ({then} then, {now} now)")
            });
        }
        None
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One key file as it was when the run scanned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFileIdentity {
    /// `--ids-file` or `--keys`.
    pub flag: String,
    /// As the user named it (for messages; a moved file is the same file).
    pub shown: String,
    pub bytes: u64,
    pub records: u64,
    /// SHA-256 of the first [`HEAD_BYTES`] of the file (of its parts, in order), in hex.
    pub head_sha256: String,
}

impl KeyFileIdentity {
    /// The identity of the key file made of `files` (one, or Parquet parts in order).
    pub fn of(flag: &str, shown: &str, files: &[PathBuf], records: u64) -> io::Result<Self> {
        let mut bytes = 0;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut head = Vec::new();
        for file in files {
            bytes += std::fs::metadata(file)?.len();
            let want = HEAD_BYTES.saturating_sub(head.len() as u64);
            if want > 0 {
                File::open(file)?.take(want).read_to_end(&mut head)?;
            }
        }
        digest.update(&head);
        let head_sha256 = digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(KeyFileIdentity {
            flag: flag.to_string(),
            shown: shown.to_string(),
            bytes,
            records,
            head_sha256,
        })
    }

    /// The same file's content (wherever it is now).
    fn same_as(&self, other: &KeyFileIdentity) -> bool {
        (&self.flag, self.bytes, self.records, &self.head_sha256)
            == (&other.flag, other.bytes, other.records, &other.head_sha256)
    }
}

impl JobRecord {
    pub fn new(key_files: Vec<KeyFileIdentity>, request: Option<JobRequest>) -> JobRecord {
        JobRecord {
            version: VERSION,
            key_files,
            request,
        }
    }

    /// Why rows of `self`'s job must not be appended to an output written for `kept`; `None`
    /// when they may.
    pub fn differs_from(&self, kept: &JobRecord) -> Option<String> {
        if kept.version != self.version {
            return None;
        }
        if kept.key_files.len() != self.key_files.len() {
            return Some(format!(
                "it was written from {} key files, this run reads {}",
                kept.key_files.len(),
                self.key_files.len()
            ));
        }
        // The key files first: a changed one is the precise reason when the items differ too.
        let Some((was, now)) = kept
            .key_files
            .iter()
            .zip(&self.key_files)
            .find(|(was, now)| !was.same_as(now))
        else {
            return match (&kept.request, &self.request) {
                (Some(kept), Some(now)) => now.differs_from(kept),
                _ => None,
            };
        };
        Some(format!(
            "{} {} is not the file it was written from ({} records, {} bytes then; {} records, {} bytes now{})",
            now.flag,
            now.shown,
            was.records,
            was.bytes,
            now.records,
            now.bytes,
            if (was.records, was.bytes) == (now.records, now.bytes) {
                ", other content"
            } else {
                ""
            }
        ))
    }
}

/// Where the record of the output `path` is kept: beside it, by its lock.
pub fn path_for(path: &Path) -> PathBuf {
    let lock = super::lock::lock_path_for_file(path);
    let name = lock.file_name().map_or_else(String::new, |n| {
        n.to_string_lossy().trim_end_matches(".lock").to_string()
    });
    lock.with_file_name(format!("{name}.job.json"))
}

/// The record kept beside the output `path`; `None` when there is none (an output of an older
/// version) or it does not parse.
pub fn read(path: &Path) -> Option<JobRecord> {
    let text = std::fs::read(path_for(path)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Keeps `record` beside the output `path` (written aside and renamed: never half a record).
pub fn write(path: &Path, record: &JobRecord) -> io::Result<()> {
    let target = path_for(path);
    let dir = super::target::directory_of(&target);
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut file, record)?;
    file.write_all(b"\n")?;
    file.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_key_file_differs_and_the_same_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys.txt");
        std::fs::write(&keys, "ant\nbee\ncat\n").expect("write");
        let first = KeyFileIdentity::of("--ids-file", "keys.txt", std::slice::from_ref(&keys), 3)
            .expect("id");
        let kept = JobRecord::new(vec![first.clone()], None);
        let out = dir.path().join("out.csv");
        write(&out, &kept).expect("write record");
        assert_eq!(read(&out), Some(kept.clone()));
        assert!(path_for(&out).ends_with(".out.csv.job.json"));
        let moved = KeyFileIdentity {
            shown: "elsewhere.txt".into(),
            ..first
        };
        assert_eq!(JobRecord::new(vec![moved], None).differs_from(&kept), None);
        std::fs::write(&keys, "ant\nbee\nzed\ncat\n").expect("write");
        let now = KeyFileIdentity::of("--ids-file", "keys.txt", std::slice::from_ref(&keys), 4)
            .expect("id");
        let why = JobRecord::new(vec![now], None)
            .differs_from(&kept)
            .expect("differs");
        assert!(why.contains("--ids-file keys.txt is not the file"), "{why}");
        assert!(
            why.contains("3 records, 12 bytes then; 4 records, 16 bytes now"),
            "{why}"
        );
        std::fs::write(&keys, "ant\nbee\ncow\n").expect("write");
        let same_size = KeyFileIdentity::of("--ids-file", "keys.txt", &[keys], 3).expect("id");
        let why = JobRecord::new(vec![same_size], None)
            .differs_from(&kept)
            .expect("differs");
        assert!(why.ends_with("other content)"), "{why}");
        assert!(
            JobRecord::new(Vec::new(), None)
                .differs_from(&kept)
                .is_some()
        );
    }

    #[test]
    fn a_job_request_keeps_no_secret_and_names_the_first_difference() {
        let request = |url: &str, headers: &[&str], body: Option<&str>| RequestSpec {
            url: url.into(),
            method: None,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            body: body.map(|b| b.as_bytes().to_vec()),
            user_agent: "ua".into(),
            accept_encoding: None,
            key_columns: Vec::new(),
        };
        let typed = ["Cookie: sid=abc".to_string(), "X-Day: {id}".to_string()];
        let job = |spec: &RequestSpec| {
            JobRequest::new(
                spec,
                &typed,
                &Schema::default(),
                &crate::output::csv_rows::Csv,
                IdRange::new(0, 10),
            )
        };
        // `X-Secret-From-File` was read from `-H @FILE`: not in `typed`.
        let first = job(&request(
            "http://u:pw@h/?id={id}",
            &["Cookie: sid=abc", "X-Day: {id}", "X-From-File: hunter2"],
            Some("password=hunter2"),
        ));
        // Another spelling of the same header is the same job.
        let typed_as = ["cookie:sid=abc".to_string(), "x-day:{id}".to_string()];
        let spelled = JobRequest::new(
            &request(
                "http://u:pw@h/?id={id}",
                &["cookie:sid=abc", "x-day:{id}", "x-from-file: other"],
                Some("password=hunter2"),
            ),
            &typed_as,
            &Schema::default(),
            &crate::output::csv_rows::Csv,
            IdRange::new(0, 10),
        );
        assert_eq!(spelled, first);
        let text = serde_json::to_string(&first).expect("json");
        for secret in ["pw@", "sid=abc", "hunter2"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(first.headers, ["cookie", "x-day: {id}", "x-from-file"]);
        assert_eq!(first.method, "POST");
        let same = job(&request(
            "http://u:other@h/?id={id}",
            &["Cookie: sid=new", "X-Day: {id}", "X-From-File: other"],
            Some("password=hunter2"),
        ));
        assert_eq!(same.differs_from(&first), None);
        let other_body = job(&request(
            "http://u:pw@h/?id={id}",
            &["Cookie: sid=abc", "X-Day: {id}", "X-From-File: x"],
            Some("password=other"),
        ));
        assert_eq!(
            other_body.differs_from(&first).as_deref(),
            Some("the body (-d) differs")
        );
        let other_url = job(&request("http://g/?id={id}", &[], None));
        assert_eq!(
            other_url.differs_from(&first).as_deref(),
            Some("the URL differs (http://***@h/?id={id} then, http://g/?id={id} now)")
        );
    }
}

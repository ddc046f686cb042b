//! The documents a newcomer reads agree with the tool: every relative link in the README and
//! the docs reaches its file (and heading), and the guide's flag table has a row for every flag
//! `run --help` lists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The documents of the repository a reader follows links through.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = ["README.md", "bench/README.md", "tests/README.md"]
        .iter()
        .map(|p| Path::new(ROOT).join(p))
        .collect();
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs
}

/// The targets of a Markdown text's inline links, `[text](target)`.
fn link_targets(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target))
        .map(|target| target.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to `-`.
fn anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_reaches_its_file_and_heading() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("read");
        let dir = doc.parent().expect("a directory");
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.clone()
            } else {
                dir.join(file)
            };
            if !path.exists() {
                broken.push(format!("{}: {target} (no such file)", doc.display()));
                continue;
            }
            if let Some(anchor) = anchor
                && path.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&path).expect("read")).contains(anchor)
            {
                broken.push(format!("{}: {target} (no such heading)", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_guide_has_a_row_for_every_run_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::new(dir.path())
        .args(["run", "--help"])
        .output_of();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let long_flags = |text: &str| -> BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|word| word.starts_with("--") && word.len() > 2)
            .map(String::from)
            .collect()
    };
    let listed: BTreeSet<String> = help
        .lines()
        .filter(|line| line.trim_start().starts_with('-'))
        .flat_map(long_flags)
        .filter(|flag| flag != "--help")
        .collect();
    assert!(listed.len() > 40, "{listed:?}");
    let guide = std::fs::read_to_string(Path::new(ROOT).join("docs/guide.md")).expect("read");
    let in_table: BTreeSet<String> = guide
        .lines()
        .filter(|line| line.starts_with("| `-"))
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(long_flags)
        .collect();
    let missing: Vec<&String> = listed.difference(&in_table).collect();
    assert!(
        missing.is_empty(),
        "no row in docs/guide.md for {missing:?}"
    );
}

/// The shell block under a heading of the README, continuation lines as written.
fn readme_block(heading: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("read");
    let section = &readme[readme.find(heading).expect("heading")..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let len = section[start..].find("```").expect("block end");
    section[start..start + len].to_string()
}

#[test]
fn every_readme_example_runs_as_written_against_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Server::start(&[]);
    // As written, but over a few hundred ids, and the dashboard on a free port.
    let script = readme_block("## Examples")
        .replace("0..50000000", "0..300")
        .replace("0..1000000", "0..300")
        .replace("--dashboard 9898", "--dashboard 0");
    assert!(script.matches("ringscrape ").count() >= 8, "{script}");
    let bin_dir = Path::new(BIN).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = std::process::Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("API", &serve.base)
        .stdin(std::process::Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("RINGSCRAPE_") {
            bash.env_remove(name);
        }
    }
    let run = bash.output().expect("bash");
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let logs = csv_rows(&dir.path().join("logs.csv"));
    assert_eq!(logs.len(), 300);
    // serve reads the id from the path: every body names the id of its row.
    for row in &logs {
        let body: serde_json::Value = serde_json::from_str(&row["body"]).expect("a JSON body");
        assert_eq!(body["id"].to_string(), row["id"], "{row:?}");
    }
    for made in [
        "users.parquet",
        "logs.parquet",
        "events.csv",
        "fresh.csv",
        "out.csv",
        "run.html",
    ] {
        assert!(dir.path().join(made).exists(), "{made}");
    }
}

#[test]
fn the_first_run_in_the_readme_writes_the_columns_it_shows() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("read");
    let section = &readme[readme.find("## First run").expect("a First run section")..];
    let sample = &section[section.find("```csv\n").expect("a sample") + 7..];
    let header = sample.lines().next().expect("a header line");
    let serve = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let first_run = readme_block("and in another:");
    let args: Vec<String> = first_run
        .split_whitespace()
        .skip(1)
        .map(|word| {
            word.trim_matches('\'')
                .replace("http://127.0.0.1:8080", &serve.base)
                .replace("0..100000", "0..500")
        })
        .collect();
    TestCommand::new(dir.path()).args(&args).ok();
    let written = std::fs::read_to_string(dir.path().join("logs.csv")).expect("logs.csv");
    assert_eq!(written.lines().next(), Some(header));
    assert_eq!(written.lines().count(), 501);
}

/// The rows of the first table after `heading` in the document at `path`.
fn table_after(path: &str, heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(path)).expect("read");
    let section = &text[text
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} in {path}"))..];
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .map(String::from)
        .collect()
}

#[test]
fn one_speed_table_the_readme_shows_the_bench_readme_headline() {
    let readme = table_after("README.md", "## Speed");
    let bench = table_after("bench/README.md", "## Latest figures");
    assert!(readme.len() >= 4, "{readme:?}");
    assert_eq!(readme, bench);
}

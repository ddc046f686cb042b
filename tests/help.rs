//! The whole `--help` of every command, kept as written in `tests/help/`: a garbled, spliced or
//! missing description fails here, and a change to the help shows in review as a change to
//! these files. After changing a flag on purpose, rewrite them with
//! `UPDATE_HELP_SNAPSHOTS=1 cargo test --release --test integration help::`.

use std::path::{Path, PathBuf};

use crate::common::*;

/// The commands a user runs (`worker` is the supervisor's, hidden).
const COMMANDS: [&str; 6] = ["", "run", "serve", "tune", "merge", "completions"];

fn snapshot(command: &str) -> PathBuf {
    let name = if command.is_empty() {
        "ringscrape"
    } else {
        command
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/help")
        .join(format!("{name}.txt"))
}

#[test]
fn every_command_help_is_as_kept_in_tests_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    let update = std::env::var_os("UPDATE_HELP_SNAPSHOTS").is_some();
    let mut differ = Vec::new();
    for command in COMMANDS {
        let args: Vec<&str> = [command, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let out = TestCommand::new(dir.path()).args(&args).output_of();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{command} --help: {}",
            stderr(&out)
        );
        let help = String::from_utf8(out.stdout).expect("utf-8 help");
        let path = snapshot(command);
        if update {
            std::fs::write(&path, &help).expect("write snapshot");
            continue;
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        if kept != help {
            differ.push(format!(
                "{}: differs from `ringscrape {command} --help`",
                path.display()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{differ:#?}\n(a change on purpose: UPDATE_HELP_SNAPSHOTS=1 cargo test --release --test integration help::)"
    );
}

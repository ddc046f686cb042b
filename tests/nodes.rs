//! A job over several nodes, simulated as local processes with each scheduler's variables: each
//! node takes its slice, a killed node resumes its own slice, and `merge` proves (or refuses)
//! coverage. The manifest for Kubernetes is checked against the API types.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

/// `ringscrape run <args>` in `dir` as one node, with `vars` set (and no scheduler variable of
/// the test's own environment: [`TestCommand`] removes them).
fn node_command(dir: &Path, vars: &[(String, String)], args: &[&str]) -> Command {
    let mut command = TestCommand::new(dir).arg("run").args(args).into_command();
    command
        .envs(vars.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn run_node(dir: &Path, vars: &[(String, String)], args: &[&str]) -> Output {
    node_command(dir, vars, args).output().expect("run node")
}

fn spawn_node(dir: &Path, vars: &[(String, String)], args: &[&str]) -> Child {
    node_command(dir, vars, args).spawn().expect("start node")
}

/// Task `k` of a Slurm array submitted as `--array=5-7`.
fn slurm(k: u64) -> Vec<(String, String)> {
    [
        ("SLURM_ARRAY_TASK_ID", (5 + k).to_string()),
        ("SLURM_ARRAY_TASK_MIN", "5".into()),
        ("SLURM_ARRAY_TASK_MAX", "7".into()),
        ("SLURM_ARRAY_TASK_COUNT", "3".into()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

/// Index `k` of a Kubernetes Indexed Job with 3 completions.
fn kubernetes(k: u64) -> Vec<(String, String)> {
    vec![
        ("JOB_COMPLETION_INDEX".into(), k.to_string()),
        ("RINGSCRAPE_NODE_COUNT".into(), "3".into()),
    ]
}

fn merge(dir: &Path, args: &[&str]) -> Output {
    ringscrape(dir, &[&["merge"], args].concat())
}

/// Three nodes over 0..3000, node 1 killed with SIGKILL mid-run and started again with
/// `--resume` (as the launchers do), then merged: every id exactly once.
fn three_nodes_one_killed_then_merged(vars: fn(u64) -> Vec<(String, String)>, engine: &str) {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let args = [
        "-u",
        &url,
        "-i",
        "0..3000",
        "-s",
        "2",
        "-c",
        "4",
        "--no-progress",
        "-o",
        "part-{node}.csv",
    ];
    for k in [0, 2] {
        let out = run_node(dir.path(), &vars(k), &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let expected = format!("node {k} of 3 (from {engine}");
        assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    }
    let mut victim = spawn_node(dir.path(), &vars(1), &args);
    let part = dir.path().join("part-1.csv");
    // 1000 ids at 8 in flight and ~30 ms each take ~3.7 s: kill once rows are coming in.
    let started = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&part).ok()?;
        (text.lines().count() > 1).then_some(())
    });
    assert!(started.is_some(), "node 1 wrote no rows");
    victim.kill().expect("SIGKILL node 1");
    let _ = victim.wait();
    let partial = std::fs::read_to_string(&part).expect("partial part");
    let before = partial.lines().count() - 1;
    assert!(before < 1000, "node 1 was killed after finishing");

    let resume = [&args[..], &["--resume"]].concat();
    let out = run_node(dir.path(), &vars(1), &resume);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming part-1.csv"),
        "{}",
        stderr(&out)
    );
    let rows = read_rows(&part);
    assert_one_row_per_id(&rows, 1000, 2000);

    let out = merge(
        dir.path(),
        &[
            "--ids",
            "0..3000",
            "all.csv",
            "part-0.csv",
            "part-1.csv",
            "part-2.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("every id of 0..3000 has exactly one row"),
        "{}",
        stderr(&out)
    );
    let rows = read_rows(&dir.path().join("all.csv"));
    assert_one_row_per_id(&rows, 0, 3000);
    for row in &rows {
        assert_eq!(row.status, Some(200), "{row:?}");
        assert_eq!(row.bytes, demo_body_len(row.id), "{row:?}");
    }
}

#[test]
fn slurm_array_tasks_take_their_slices_and_a_killed_task_resumes_its_own() {
    three_nodes_one_killed_then_merged(slurm, "SLURM_ARRAY_TASK_ID=");
}

#[test]
fn kubernetes_indexes_take_their_slices_and_a_killed_index_resumes_its_own() {
    three_nodes_one_killed_then_merged(kubernetes, "JOB_COMPLETION_INDEX");
}

#[test]
fn merge_names_a_missing_slice_and_a_duplicated_one() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    for k in 0..3 {
        let index = k.to_string();
        let args = [
            "-u",
            &url,
            "-i",
            "0..3000",
            "--node-index",
            &index,
            "--node-count",
            "3",
            "-o",
            "part-{node}.csv",
        ];
        let out = run_node(dir.path(), &[], &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = merge(
        dir.path(),
        &["-i", "0..3000", "a.csv", "part-0.csv", "part-2.csv"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("missing 1000 of 3000 ids: 1000..2000"),
        "{}",
        stderr(&out)
    );
    let rows = read_rows(&dir.path().join("a.csv"));
    assert_eq!(rows.len(), 2000);
    assert!(rows.iter().all(|r| !(1000..2000).contains(&r.id)));

    std::fs::copy(dir.path().join("part-1.csv"), dir.path().join("again.csv")).expect("copy");
    let parts = ["part-0.csv", "part-1.csv", "part-2.csv", "again.csv"];
    let out = merge(
        dir.path(),
        &[&["-i", "0..3000", "b.csv"], &parts[..]].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("again.csv: 1000 duplicate ids, also in an earlier input: 1000..2000"),
        "{}",
        stderr(&out)
    );
    assert_one_row_per_id(&read_rows(&dir.path().join("b.csv")), 0, 3000);

    let out = merge(
        dir.path(),
        &[
            &["-i", "0..3000", "--allow-duplicates", "last", "c.csv"],
            &parts[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_row_per_id(&read_rows(&dir.path().join("c.csv")), 0, 3000);

    // Inputs from another job are refused, and OUT is never clobbered without --overwrite.
    let out = merge(dir.path(), &["-i", "0..2000", "d.csv", "part-2.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("part-2.csv: 1000 rows are not items of this job"),
        "{}",
        stderr(&out)
    );
    let out = merge(dir.path(), &["-i", "0..3000", "a.csv", "part-0.csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("a.csv: exists"), "{}", stderr(&out));
}

#[test]
fn nodes_over_a_key_file_merge_by_line() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // 1000 lines, every 7th one empty: items are the other lines.
    let text: String = (1..=1000)
        .map(|n| {
            if n % 7 == 0 {
                "\n".to_string()
            } else {
                format!("key-{n}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("keys.txt"), text).expect("keys");
    let url = format!("{}/log?k={{id}}", server.base);
    for k in 0..3 {
        let args = [
            "-u",
            &url,
            "--ids-file",
            "keys.txt",
            "-o",
            "part-{node}.csv",
        ];
        let out = run_node(dir.path(), &kubernetes(k), &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = merge(
        dir.path(),
        &[
            "--ids-file",
            "keys.txt",
            "all.csv",
            "part-0.csv",
            "part-1.csv",
            "part-2.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut reader = ringscrape::output::reader::RowReader::new(std::io::BufReader::new(
        std::fs::File::open(dir.path().join("all.csv")).expect("open"),
    ))
    .expect("header");
    let line_column = reader.column("line").expect("line column");
    let mut lines = Vec::new();
    while let Some(row) = reader.next_row().expect("row") {
        let line = row.index(line_column).expect("line number");
        let id = row.typed().expect("typed").id;
        assert_eq!(id, format!("key-{line}"));
        lines.push(line);
    }
    lines.sort_unstable();
    let expected: Vec<u64> = (1..=1000).filter(|n| n % 7 != 0).collect();
    assert_eq!(lines, expected);
}

#[test]
fn bad_node_settings_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = [
        "-u",
        "http://127.0.0.1:9/log?id={id}",
        "-i",
        "0..10",
        "-o",
        "p-{node}.csv",
    ];
    /// Flags, scheduler variables, and what the one-line error must say.
    type Case<'a> = (&'a [&'a str], Vec<(String, String)>, &'a str);
    let cases: [Case; 6] = [
        (
            &["--node-index", "3", "--node-count", "3"],
            vec![],
            "is not below the node count 3",
        ),
        (
            &["--node-index", "0", "--node-count", "0"],
            vec![],
            "node count 0",
        ),
        (&["--node-index", "1"], vec![], "--node-count"),
        (
            &["--node-index", "0", "--node-count", "11"],
            vec![],
            "more nodes than the job's 10 items",
        ),
        (
            &[],
            vec![("JOB_COMPLETION_INDEX".into(), "1".into())],
            "RINGSCRAPE_NODE_COUNT is not",
        ),
        (
            &[],
            vec![],
            "--output contains {node} but this run is not one node of many",
        ),
    ];
    for (flags, vars, expected) in cases {
        let out = run_node(dir.path(), &vars, &[&base[..], flags].concat());
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(expected), "{flags:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{flags:?}: {err}");
        assert!(!dir.path().join("p-0.csv").exists() && !dir.path().join("p-1.csv").exists());
    }
}

#[test]
fn the_manifests_seccomp_lines_uncommented_ask_for_the_io_uring_profile() {
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/k8s");
    let manifest = std::fs::read_to_string(k8s.join("indexed-job.yaml")).expect("manifest");
    assert!(
        k8s.join("seccomp-io-uring.json").is_file(),
        "the profile it names"
    );
    let uncommented: Vec<String> = manifest
        .lines()
        .map(|line| match line.strip_prefix("      # ") {
            Some(rest) if rest.starts_with("securityContext:") || rest.starts_with("  ") => {
                format!("      {rest}")
            }
            _ => line.to_string(),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("with-profile.yaml");
    std::fs::write(&path, uncommented.join("\n")).expect("write");
    let (code, text) = check_manifest(&path);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ok   seccompProfile Localhost profiles/seccomp-io-uring.json"),
        "{text}"
    );
    let (_, as_shipped) = check_manifest(&k8s.join("indexed-job.yaml"));
    assert!(
        !as_shipped.contains("seccompProfile"),
        "shipped commented out"
    );
}

/// Runs the manifest check; returns its exit code and output.
fn check_manifest(path: &Path) -> (Option<i32>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/check_k8s_job.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn the_indexed_job_manifest_deserializes_into_the_kubernetes_api_types() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/k8s/indexed-job.yaml");
    let (code, text) = check_manifest(&manifest);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("manifest ok"), "{text}");
    // The check can fail: a misspelt field is dropped by the client and caught.
    let good = std::fs::read_to_string(&manifest).expect("manifest");
    let dir = tempfile::tempdir().expect("tempdir");
    for (right, wrong) in [
        ("completionMode:", "completionmode:"),
        ("backoffLimitPerIndex:", "backoffLimitPerindex:"),
        ("name: RINGSCRAPE_NODE_COUNT", "name: RINGSCRAPE_NODES"),
    ] {
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, good.replace(right, wrong)).expect("write");
        let (code, text) = check_manifest(&bad);
        assert_eq!(code, Some(1), "{wrong}: {text}");
    }
}

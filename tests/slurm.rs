//! On a real Slurm: `config/slurm/array.sbatch` submitted as a 3-task array against a local
//! target; one finished task has its file cut short and is requeued (it resumes its own slice);
//! `merge` then finds every id once. Uses a single-node Slurm started by
//! `tests/servers/slurm-single-node.sh` (root; installs the Debian packages when missing). Only
//! `make test` runs it (the fast tier leaves it out); where Slurm cannot start, it fails saying
//! why.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn sh(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `slurm-single-node.sh start|stop`.
fn single_node(action: &str) -> Output {
    let script = repo("tests/servers/slurm-single-node.sh");
    sh("bash", &[&script.to_string_lossy(), action])
}

/// Starts Slurm unless it runs already: `Some(true)` when this test started it, `None` where it
/// cannot start (a machine without its packages or daemons), said as a skip on stderr — never a
/// silent pass.
fn start_slurm() -> Option<bool> {
    needs_root("a single-node Slurm");
    let already = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "idle");
    if already {
        return Some(false);
    }
    let out = single_node("start");
    if !out.status.success() {
        skipped(&format!(
            "Slurm cannot start here (tests/servers/slurm-single-node.sh start): {}",
            text(&out)
        ));
        return None;
    }
    Some(true)
}

/// Waits until `scontrol show job JOB` shows `state` after `restarts` restarts.
fn wait_for_state(job: &str, state: &str, restarts: u32) -> String {
    let wanted = [
        format!("JobState={state} "),
        format!("Restarts={restarts} "),
    ];
    wait_for(Duration::from_secs(180), || {
        let shown = text(&sh("scontrol", &["show", "job", job]));
        wanted
            .iter()
            .all(|w| shown.contains(w.as_str()))
            .then_some(shown)
    })
    .unwrap_or_else(|| {
        panic!(
            "{job} never reached {state} with {restarts} restarts: {}",
            text(&sh("scontrol", &["show", "job", job]))
        )
    })
}

#[test]
#[ignore = "needs root: starts a single-node Slurm (make test)"]
fn a_slurm_array_scrapes_its_slices_a_requeued_task_resumes_and_merge_proves_coverage() {
    let Some(started) = start_slurm() else {
        return;
    };
    let server = Server::start(&["--delay-ms", "0..5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_text = dir.path().to_string_lossy().into_owned();
    let output = format!("{dir_text}/part-{{node}}.csv");
    let log = format!("{dir_text}/slurm-%A_%a.log");
    let url = server.url();
    let sbatch = repo("config/slurm/array.sbatch");
    let submit = Command::new("sbatch")
        .args([
            "--parsable",
            "--array=0-2",
            "--chdir",
            &dir_text,
            "--output",
            &log,
        ])
        .arg(&sbatch)
        .args([
            "-u", &url, "-i", "0..3000", "-s", "2", "-c", "16", "-o", &output,
        ])
        .env("RINGSCRAPE_BIN", BIN)
        .output()
        .expect("sbatch");
    assert!(submit.status.success(), "sbatch: {}", text(&submit));
    let job = String::from_utf8_lossy(&submit.stdout).trim().to_string();
    for task in 0..3 {
        wait_for_state(&format!("{job}_{task}"), "COMPLETED", 0);
    }
    let part = |k: u64| dir.path().join(format!("part-{k}.csv"));
    for k in 0..3 {
        assert_one_row_per_id(&read_rows(&part(k)), 1000 * k, 1000 * (k + 1));
    }
    let task_log = |k: u64| {
        std::fs::read_to_string(dir.path().join(format!("slurm-{job}_{k}.log"))).expect("log")
    };
    assert!(
        task_log(2).contains("node 2 of 3 (from SLURM_ARRAY_TASK_ID=2"),
        "{}",
        task_log(2)
    );

    // As if task 1's node died mid-run: its file ends in the middle of a row.
    let len = std::fs::metadata(part(1)).expect("part 1").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(part(1))
        .and_then(|f| f.set_len(len / 2))
        .expect("cut part 1 short");
    let task = format!("{job}_1");
    let requeue = sh("scontrol", &["requeue", &task]);
    assert!(requeue.status.success(), "requeue: {}", text(&requeue));
    // Without this a requeued task waits about 2 minutes before it is eligible again.
    let update = sh(
        "scontrol",
        &["update", &format!("JobId={task}"), "StartTime=now"],
    );
    assert!(update.status.success(), "update: {}", text(&update));
    wait_for_state(&task, "COMPLETED", 1);
    let log1 = task_log(1);
    assert!(log1.contains("restart 1"), "{log1}");
    assert!(
        log1.contains(&format!("resuming {dir_text}/part-1.csv")),
        "{log1}"
    );
    assert_one_row_per_id(&read_rows(&part(1)), 1000, 2000);

    let merged = TestCommand::new(dir.path())
        .args([
            "merge",
            "-i",
            "0..3000",
            "all.csv",
            "part-0.csv",
            "part-1.csv",
            "part-2.csv",
        ])
        .output_of();
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    let rows = read_rows(&dir.path().join("all.csv"));
    assert_one_row_per_id(&rows, 0, 3000);
    assert!(rows.iter().all(|r| r.status == Some(200)));
    if started {
        single_node("stop");
    }
}

//! The core pipeline, end to end: the built binary against `ringscrape serve` on loopback.

use std::collections::HashSet;

use crate::common::*;

#[test]
fn two_shards_write_exactly_one_row_per_id_all_200_with_right_byte_counts() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &server.url(), "0..20000")
        .shards(2)
        .concurrency(64)
        .output("out.csv")
        .output_of();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 20_000);
    for row in &rows {
        assert_eq!(row.status, Some(200), "{row:?}");
        assert_eq!(row.bytes, demo_body_len(row.id), "{row:?}");
        assert_eq!(row.attempts, 1);
        assert_eq!(row.error, "");
        assert!(row.latency_ms > 0.0 && row.latency_ms < 30_000.0, "{row:?}");
    }
    let err = stderr(&out);
    assert!(
        err.contains("rows       20000 written to out.csv  (2xx 20000"),
        "summary missing: {err}"
    );
    assert!(err.contains("latency    min "), "summary missing: {err}");
    assert!(
        err.contains("status     200 20000"),
        "summary missing: {err}"
    );
}

#[test]
fn a_range_not_starting_at_zero_and_stdout_output() {
    let server = Server::start(&["--body-bytes", "1000"]);
    let dir = tempfile::tempdir().expect("tempdir");
    // Durations with units, as wrk and oha take them.
    let out = TestCommand::run(dir.path(), &server.url(), "1000..1500")
        .shards(3)
        .output("-")
        .args([
            "--timeout",
            "2500ms",
            "--connect-timeout",
            "1s",
            "--grace",
            "1m",
        ])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let path = dir.path().join("stdout.csv");
    std::fs::write(&path, &out.stdout).expect("write");
    let rows = read_rows(&path);
    assert_one_row_per_id(&rows, 1000, 1500);
    assert!(
        rows.iter()
            .all(|r| r.bytes == 1000 && r.status == Some(200))
    );
}

#[test]
fn workers_are_pinned_processes_with_io_uring_and_the_raised_open_files_limit() {
    // Slow answers keep the run going long enough to look at its workers.
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut run = TestCommand::run(dir.path(), &server.url(), "0..20000")
        .shards(2)
        .concurrency(64)
        .output("out.csv")
        .spawn();
    let workers = wait_for_workers(&run, 2, holds_io_uring);

    let cpus: HashSet<String> = workers
        .iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
            status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .expect("Cpus_allowed_list")
                .trim()
                .to_string()
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        assert_eq!(cpus.len(), 2, "workers pinned to different cores: {cpus:?}");
        assert!(
            cpus.iter().all(|c| c.parse::<usize>().is_ok()),
            "each pinned to one core: {cpus:?}"
        );
    }

    let hard = open_files_limit("self").1;
    for pid in &workers {
        let (soft, worker_hard) = open_files_limit(&pid.to_string());
        assert_eq!(
            soft, worker_hard,
            "worker {pid}: soft limit raised to the hard limit"
        );
        assert_eq!(worker_hard, hard);
    }
    let status = run.wait().expect("wait run");
    assert!(status.success());
    assert_one_row_per_id(&read_rows(&dir.path().join("out.csv")), 0, 20_000);
}

/// (soft, hard) "Max open files" of a process, from /proc/PID/limits.
fn open_files_limit(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn unreachable_target_gives_connect_error_rows_not_a_crash() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{port}/log?id={{id}}");
    let out = TestCommand::run(dir.path(), &url, "0..200")
        .shards(2)
        .concurrency(8)
        .output("out.csv")
        .output_of();
    assert_eq!(
        out.status.code(),
        Some(0),
        "every id has a row: {}",
        stderr(&out)
    );
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 200);
    assert!(
        rows.iter()
            .all(|r| r.status.is_none() && r.error == "connect"),
        "{:?}",
        rows[0]
    );
}

#[test]
fn config_file_values_apply_and_flags_override_them() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("scrape.toml");
    std::fs::write(
        &config,
        format!(
            "url = \"{}\"\nids = \"0..100\"\nshards = 1\noutput = \"from-config.csv\"\n",
            server.url()
        ),
    )
    .expect("write config");
    let out = TestCommand::new(dir.path())
        .args(["run", "--config", "scrape.toml", "--ids", "0..50"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_one_row_per_id(&read_rows(&dir.path().join("from-config.csv")), 0, 50);
}

/// User + system CPU time of a process, in clock ticks (from /proc/PID/stat).
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Resident memory of a process and its children, in KiB.
fn tree_rss_kib(pid: u32) -> u64 {
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("VmRSS:")?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
            })
            .unwrap_or(0)
    };
    rss(pid) + children_of(pid).into_iter().map(rss).sum::<u64>()
}

#[test]
fn a_reader_that_stops_reading_stalls_the_workers_instead_of_growing_memory() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut run = TestCommand::run(dir.path(), &server.url(), "0..300000")
        .shards(2)
        .concurrency(64)
        .output("-")
        .into_command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start run");
    let workers = wait_for_workers(&run, 2, |_| true);
    let worker_ticks = || workers.iter().map(|&pid| cpu_ticks(pid)).sum::<u64>();
    // Nobody reads stdout. Without backpressure the workers would go on fetching and the rows
    // would pile up in memory. With it, once the pipes and the writer's queue are full (about
    // a second on an idle box, longer on a loaded one), the workers stall: a 1 s window
    // (10 samples 100 ms apart) in which they use under 10 CPU ticks, within 30 s.
    let mut peak = 0;
    let mut ticks = std::collections::VecDeque::from([worker_ticks()]);
    let stalled_at = wait_for(std::time::Duration::from_secs(30), || {
        std::thread::sleep(std::time::Duration::from_millis(80));
        peak = peak.max(tree_rss_kib(run.id()));
        ticks.push_back(worker_ticks());
        if ticks.len() > 11 {
            ticks.pop_front();
        }
        let busy = ticks.back()? - ticks.front()?;
        (ticks.len() == 11 && busy < 10).then_some(*ticks.back()?)
    });
    assert!(
        run.try_wait().expect("poll").is_none(),
        "the run waits for its reader"
    );
    let stalled_at =
        stalled_at.unwrap_or_else(|| panic!("workers busy while nobody read the rows: {ticks:?}"));
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB while stalled");
    // They stalled with ids left to fetch (not done, their rows held somewhere): reading a
    // third of the rows sets them to work again.
    let mut stdout = run.stdout.take().expect("stdout");
    let mut csv = vec![0; 3_000_000];
    std::io::Read::read_exact(&mut stdout, &mut csv).expect("read");
    let resumed = wait_for(std::time::Duration::from_secs(30), || {
        (worker_ticks() >= stalled_at + 20).then_some(())
    });
    assert!(
        resumed.is_some(),
        "reading the rows did not wake the workers"
    );
    std::io::Read::read_to_end(&mut stdout, &mut csv).expect("read");
    assert!(run.wait().expect("wait").success());
    let path = dir.path().join("out.csv");
    std::fs::write(&path, csv).expect("write");
    assert_one_row_per_id(&read_rows(&path), 0, 300_000);
}

#[test]
fn environment_variables_sit_between_flags_and_the_config_file() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("c.toml"),
        "output = 'from-file.csv'\nids = '0..50'\n",
    )
    .expect("write");
    let run = |args: &[&str]| {
        TestCommand::new(dir.path())
            .args(["run", "--config", "c.toml", "-u", &server.url()])
            .args(args)
            .env("RINGSCRAPE_OUTPUT", "from-env.csv")
            .env("RINGSCRAPE_IDS", "0..20")
            .output_of()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !dir.path().join("from-file.csv").exists(),
        "the variable wins over the file"
    );
    assert_one_row_per_id(&read_rows(&dir.path().join("from-env.csv")), 0, 20);
    let out = run(&["-o", "from-flag.csv", "-i", "0..5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_row_per_id(&read_rows(&dir.path().join("from-flag.csv")), 0, 5);
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = TestCommand::new(std::path::Path::new("."))
            .args(["completions", shell])
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("ringscrape") && script.contains("ids-file"),
            "{shell}"
        );
    }
    let out = TestCommand::new(std::path::Path::new("."))
        .args(["completions", "cmd.exe"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn quiet_says_nothing_on_success_and_verbose_names_the_shards() {
    let server = Server::start(&["--fail-first", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let base = || {
        TestCommand::run(dir.path(), &url, "0..40")
            .shards(2)
            .concurrency(4)
            .args(["--retry-base", "0.01"])
    };
    let quiet = base().output("q.csv").arg("-q").output_of();
    assert_eq!(quiet.status.code(), Some(0), "{}", stderr(&quiet));
    assert_eq!(stderr(&quiet), "", "errors only");
    assert_one_row_per_id(&read_rows(&dir.path().join("q.csv")), 0, 40);

    let loud = base().output("v.csv").arg("-v").output_of();
    let err = stderr(&loud);
    assert_eq!(loud.status.code(), Some(0), "{err}");
    for shard in [
        "shard 0: started",
        "shard 1: started",
        "shard 0: done, 20 rows",
        "shard 1: done, 20 rows",
    ] {
        assert!(err.contains(shard), "{shard}: {err}");
    }
    assert!(err.contains("Summary:"), "{err}");
    let out = TestCommand::run(dir.path(), &url, "0..10")
        .output("x.csv")
        .args(["-q", "-v"])
        .output_of();
    assert_eq!(
        out.status.code(),
        Some(2),
        "-q and -v together: {}",
        stderr(&out)
    );
}

#[test]
fn verbose_names_each_retry() {
    let server = Server::start(&["--fail-first", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &server.url(), "0..10")
        .shards(1)
        .concurrency(2)
        .output("out.csv")
        .args(["-v", "--retry-base", "0.01"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for id in 0..10 {
        assert!(
            err.contains(&format!("id {id}: attempt 1 ended in status 503; again in")),
            "{id}: {err}"
        );
    }
}

/// A run whose connections pass half the local port range says so before it starts (and still
/// writes every row): past half, the kernel's search for a free port makes connects slow.
#[test]
fn a_run_past_half_the_local_port_range_is_told_to_widen_it() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("range");
    let bounds: Vec<u64> = range
        .split_whitespace()
        .map(|b| b.parse().expect("port"))
        .collect();
    let ports = bounds[1] - bounds[0] + 1;
    let shards = 4_u64;
    let per_worker = ports / 2 / shards + 1;
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).expect("rlimit");
    if 2 * per_worker + 64 > hard {
        skipped(&format!(
            "{per_worker} connections per worker need more than {hard} open files"
        ));
        return;
    }
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // 100 ids over `shards` workers of `per_worker` slots each, rows into `out`; its stderr.
    let run = |per_worker: u64, out: &str| {
        TestCommand::run(dir.path(), &server.url(), "0..100")
            .shards(shards)
            .concurrency(per_worker)
            .output(out)
            .ok()
    };
    let told = run(per_worker, "out.csv");
    let advice = format!("{ports} local ports (net.ipv4.ip_local_port_range");
    assert!(told.contains(&advice), "{told}");
    assert_one_row_per_id(&read_rows(&dir.path().join("out.csv")), 0, 100);
    // Half the range or fewer: no advice.
    let quiet = run(ports / 2 / shards, "below.csv");
    assert!(!quiet.contains("local ports"), "{quiet}");
}

#[test]
fn the_lines_of_many_workers_on_one_stderr_stay_whole() {
    let server = Server::start(&["--fail-first", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    // Eight workers, each saying a line per retry at once, all on one stderr.
    let err = TestCommand::run(dir.path(), &server.url(), "0..4000")
        .shards(8)
        .concurrency(16)
        .output("out.csv")
        .args(["-v", "--retry-base", "0.001", "--no-progress"])
        .ok();
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() > 4000, "a line per retry: {}", lines.len());
    for line in &lines {
        let whole = line.is_empty()
            || line.starts_with("  ")
            || *line == "Summary:"
            || (line.starts_with("ringscrape: ") && line.matches("ringscrape: ").count() == 1);
        assert!(whole, "a line cut into or run into another: {line:?}");
    }
}

//! Which event loop the workers run on, and that a run says so: the summary's `driver` line,
//! `--summary-json`'s `driver`, `driver_workers` and `driver_why`, and the stderr line said once
//! per run however many workers — on io_uring, on epoll forced by `RINGSCRAPE_DRIVER=epoll`, and
//! on epoll because a seccomp filter refuses `io_uring_setup` with EPERM, as Docker's default
//! profile and containerd's RuntimeDefault do. Every row is checked each time.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

const IDS: u64 = 3000;

/// Runs `0..IDS` on two shards writing `--summary-json`, checks every row and returns the run's
/// stderr and its summary document.
fn run_two_shards(dir: &Path, mut command: Command) -> (String, serde_json::Value) {
    let out: Output = command.output().expect("run ringscrape");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    let rows = read_rows(&dir.join("out.csv"));
    assert_one_row_per_id(&rows, 0, IDS);
    for row in &rows {
        assert_eq!(row.status, Some(200), "{row:?}");
        assert_eq!(row.bytes, demo_body_len(row.id), "{row:?}");
    }
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    let json = serde_json::from_str(&text).expect("summary.json is JSON");
    (err, json)
}

fn command(dir: &Path, server: &Server) -> TestCommand {
    TestCommand::run(dir, &server.url(), &format!("0..{IDS}"))
        .shards(2)
        .concurrency(16)
        .output("out.csv")
        .args(["--summary-json", "summary.json"])
}

/// The summary's `driver` line, whole.
fn driver_line(err: &str) -> &str {
    err.lines()
        .find(|line| line.starts_with("  driver "))
        .unwrap_or_else(|| panic!("no driver line in the summary: {err}"))
}

#[test]
fn a_run_on_io_uring_says_io_uring_in_the_summary_and_its_json() {
    if !io_uring_available() {
        skipped("io_uring_setup is refused here (a container's seccomp profile?)");
        return;
    }
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (err, json) = run_two_shards(dir.path(), command(dir.path(), &server).into_command());
    assert_eq!(driver_line(&err), "  driver     io_uring");
    assert_eq!(json["driver"], "io_uring");
    assert_eq!(json["driver_workers"], serde_json::json!({"io_uring": 2}));
    assert_eq!(json["driver_why"], serde_json::Value::Null);
    assert!(!err.contains("epoll"), "{err}");
}

#[test]
fn forced_epoll_is_said_once_and_named_in_the_summary_and_its_json() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = command(dir.path(), &server).env("RINGSCRAPE_DRIVER", "epoll");
    let (err, json) = run_two_shards(dir.path(), run.into_command());
    assert_eq!(
        err.matches("ringscrape: RINGSCRAPE_DRIVER=epoll; using the epoll driver")
            .count(),
        1,
        "once per run, not per worker: {err}"
    );
    assert_eq!(
        driver_line(&err),
        "  driver     epoll (RINGSCRAPE_DRIVER=epoll)"
    );
    assert_eq!(json["driver"], "epoll");
    assert_eq!(json["driver_workers"], serde_json::json!({"epoll": 2}));
    assert_eq!(json["driver_why"], "RINGSCRAPE_DRIVER=epoll");
}

#[test]
fn the_driver_variable_is_read_in_any_case_and_a_value_it_does_not_take_is_a_usage_error() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = command(dir.path(), &server).env("RINGSCRAPE_DRIVER", " EPOLL ");
    let (_, json) = run_two_shards(dir.path(), run.into_command());
    assert_eq!(json["driver_workers"], serde_json::json!({"epoll": 2}));
    // A typo is refused before anything starts, rather than run on io_uring as if unread.
    for typo in ["epol", "bogus"] {
        let out = TestCommand::run(dir.path(), &server.url(), "0..10")
            .output("typo.csv")
            .env("RINGSCRAPE_DRIVER", typo)
            .output_of();
        assert_eq!(out.status.code(), Some(2), "{typo}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: RINGSCRAPE_DRIVER={typo:?}: give epoll")),
            "{err}"
        );
        assert!(!dir.path().join("typo.csv").exists());
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn io_uring_refused_by_seccomp_falls_back_to_epoll_said_once_with_the_kernels_answer() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut run = command(dir.path(), &server).into_command();
    seccomp::refuse_io_uring_setup(&mut run);
    let (err, json) = run_two_shards(dir.path(), run);
    let said = "ringscrape: io_uring unavailable (Operation not permitted); falling back to epoll";
    assert_eq!(err.matches(said).count(), 1, "once per run: {err}");
    assert_eq!(
        driver_line(&err),
        "  driver     epoll (io_uring unavailable: Operation not permitted)"
    );
    assert_eq!(json["driver"], "epoll");
    assert_eq!(json["driver_workers"], serde_json::json!({"epoll": 2}));
    assert_eq!(
        json["driver_why"],
        "io_uring unavailable: Operation not permitted"
    );
}

/// Whether this process may set up an io_uring (a container's seccomp profile, or
/// `kernel.io_uring_disabled`, may refuse it).
fn io_uring_available() -> bool {
    // struct io_uring_params: 120 bytes, zeroed asks for nothing special.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup reads and writes `params`, which is as large as the kernel's
    // struct io_uring_params and lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` is the ring just set up, owned here and closed once.
    unsafe { libc::close(fd as i32) };
    true
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod seccomp {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, sock_filter};

    /// `AUDIT_ARCH_*` of this architecture (linux/audit.h): the filter acts on its system calls
    /// only.
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    /// Offsets of `nr` and `arch` in `struct seccomp_data`.
    const NR_AT: u32 = 0;
    const ARCH_AT: u32 = 4;

    /// Makes `command`'s process, and every process it starts (a filter is inherited across
    /// fork and exec), get EPERM from `io_uring_setup`: what Docker's default seccomp profile
    /// answers (its default action is `SCMP_ACT_ERRNO`, EPERM).
    pub fn refuse_io_uring_setup(command: &mut Command) {
        // SAFETY: the closure runs in the child between fork and exec; it allocates nothing
        // and makes only the prctl and seccomp system calls, both async-signal-safe.
        unsafe { command.pre_exec(install) };
    }

    fn install() -> std::io::Result<()> {
        let statement = |code: u32, k: u32| sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        let jump_if = |k: u32, jt: u8, jf: u8| sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt,
            jf,
            k,
        };
        let refuse = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let filter = [
            statement(BPF_LD | BPF_W | BPF_ABS, ARCH_AT),
            jump_if(AUDIT_ARCH, 1, 0),
            statement(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
            statement(BPF_LD | BPF_W | BPF_ABS, NR_AT),
            jump_if(libc::SYS_io_uring_setup as u32, 0, 1),
            statement(BPF_RET | BPF_K, refuse),
            statement(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        ];
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: plain system calls; `program` and the filter it points to outlive them (the
        // kernel copies the filter).
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mode = libc::SECCOMP_SET_MODE_FILTER;
            if libc::syscall(libc::SYS_seccomp, mode, 0, &raw const program) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[test]
fn the_container_profile_is_mobys_default_with_exactly_the_three_io_uring_calls_allowed() {
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/k8s");
    let text = std::fs::read_to_string(k8s.join("seccomp-io-uring.json")).expect("the profile");
    let profile: serde_json::Value = serde_json::from_str(&text).expect("the profile is JSON");
    // Every call no rule allows is refused, as in moby's profile.
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let rules = profile["syscalls"].as_array().expect("a syscalls list");
    let (added, moby) = rules.split_last().expect("rules");
    assert_eq!(
        *added,
        serde_json::json!({
            "names": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
            "action": "SCMP_ACT_ALLOW"
        })
    );
    for rule in moby {
        let names = rule["names"].as_array().expect("names");
        assert!(
            names
                .iter()
                .all(|n| !n.as_str().unwrap_or("").contains("io_uring")),
            "moby's part names io_uring: {rule}"
        );
    }
    // The rest is moby's profile as the script read it: written again from it, byte for byte.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mobys = profile.clone();
    mobys["syscalls"] = serde_json::Value::Array(moby.to_vec());
    let input = dir.path().join("default.json");
    std::fs::write(&input, serde_json::to_string(&mobys).expect("JSON")).expect("write");
    let output = dir.path().join("out.json");
    let status = Command::new("python3")
        .arg(k8s.join("seccomp-io-uring.py"))
        .args([&input, &output])
        .status()
        .expect("run python3");
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(output).expect("written"), text);
    // Run on its own output it refuses: the calls are named already.
    let again = Command::new("python3")
        .arg(k8s.join("seccomp-io-uring.py"))
        .arg(k8s.join("seccomp-io-uring.json"))
        .output()
        .expect("run python3");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already names io_uring_enter"),
        "{}",
        stderr(&again)
    );
}

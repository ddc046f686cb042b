//! Which tests run where. `make test` runs every test (CI: root, the servers of tests/setup.sh);
//! `make test-fast` sets `RINGSCRAPE_TEST_TIER=fast` and runs all but those marked
//! `#[ignore = "needs root: …"]` (network namespaces, mounts, a Slurm of their own), which
//! `make test` includes with `--include-ignored`. Every helper that needs root calls
//! [`needs_root`] first, so a new test that needs root but is not marked fails in the fast tier,
//! naming the mark, instead of joining it unnoticed. A test that cannot check what it is for
//! where it runs says so with [`skipped`], or fails; it never passes silently.

use std::io::Write;

/// The variable `make test-fast` sets to `fast`.
pub const TIER: &str = "RINGSCRAPE_TEST_TIER";

/// True under `make test-fast`.
pub fn fast_tier() -> bool {
    std::env::var(TIER).is_ok_and(|tier| tier == "fast")
}

/// True when the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Called by every helper that needs root before it does anything (`what` names it, e.g.
/// `ip netns add`): fails the calling test in the fast tier, where no such test belongs, and
/// anywhere without root, each time saying what to do.
pub fn needs_root(what: &str) {
    assert!(
        !fast_tier(),
        "{what} needs root, which the fast tier ({TIER}=fast, make test-fast) leaves out: \
         mark the test #[ignore = \"needs root: …\"] so that only `make test` runs it"
    );
    assert!(
        is_root(),
        "{what} needs root: run `make test` as root (CI does), or `make test-fast` for the \
         tests that need no root"
    );
}

/// Says on the terminal that the calling test checked nothing, and why: written to the
/// process's stderr itself, which the test harness does not capture (`eprintln!` output of a
/// passing test is never shown).
pub fn skipped(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

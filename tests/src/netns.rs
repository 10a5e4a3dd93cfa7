//! A test half run inside a network namespace of its own (`unshare -n`, as root: CI is), whose only
//! interface, loopback, starts down: how a test makes "no network at all" honestly on a machine
//! that has one, then brings the network up when it chooses.
//!
//! The parent test calls [`run_in_new_namespace`] with the name of an ignored test of the same
//! binary, the child half, which does the work there and returns early everywhere else
//! ([`inside`]). Where `unshare` is refused the parent says so and is skipped, which CI never
//! allows.

use std::process::Command;

/// Set in the environment of the child half.
const CHILD: &str = "COURIER_TEST_IN_NETNS";

/// True in the child half, inside the namespace.
pub fn inside() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the ignored test `child` of this test binary again, alone, inside a new network namespace,
/// and asserts that it ran and passed.
///
/// # Panics
/// If the child half failed, or (under CI) if no namespace could be made.
pub fn run_in_new_namespace(child: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let run = Command::new("unshare")
        .args(["-n", "--"])
        .arg(&exe)
        .args([
            "--exact",
            child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output();
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "unshare: {e}");
            eprintln!("skipped: unshare is not available ({e})");
            return;
        }
    };
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() && err.contains("unshare failed") {
        assert!(std::env::var_os("CI").is_none(), "{err}");
        eprintln!("skipped: no network namespaces here ({err})");
        return;
    }
    assert!(run.status.success(), "the child failed:\n{out}\n{err}");
    assert!(out.contains("1 passed"), "the child ran its test:\n{out}");
}

/// Brings the namespace's loopback interface up: the network "comes back".
///
/// # Panics
/// Outside the child half, or if `ip` fails.
pub fn loopback_up() {
    assert!(inside(), "only the child half changes its namespace");
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip");
    assert!(up.success(), "ip link set lo up");
}

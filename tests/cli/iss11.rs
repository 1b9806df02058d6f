//! Regression tests of issue 11's CLI failures, each named after the bug it fixed.

use crate::common::*;

/// Issue 11, item 14: `ingest DIR` exited 1; an unreadable input is a usage error (2).
#[test]
fn ingest_of_a_directory_is_a_usage_error() {
    let env = Env::new();
    let dir = env.dir.path().to_str().unwrap().to_string();
    for args in [
        vec!["ingest", dir.as_str()],
        vec!["check", "--tenant", "acme", dir.as_str()],
    ] {
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("directory"), "{args:?}: {stderr}");
    }
}

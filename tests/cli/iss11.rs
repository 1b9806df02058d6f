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

/// Issue 11, item 13: `check` stopped at the first line that is not UTF-8, with exit 1 and no
/// summary; such a line is one invalid contact, and the list goes on.
#[test]
fn check_reports_an_invalid_utf8_line_and_goes_on() {
    let env = Env::new();
    let list = env.dir.path().join("list.txt");
    std::fs::write(
        &list,
        b"+33612345678\n+3361\xff\xfe2345679\r\n+33612345670\n",
    )
    .unwrap();
    let out = env.run(&["check", "--tenant", "acme", list.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "+33612345678\n+33612345670\n"
    );
    assert!(
        stderr.contains("invalid\t+3361\u{fffd}\u{fffd}2345679\t"),
        "{stderr}"
    );
    assert!(
        stderr.contains("checked 3 contacts: 2 allowed, 0 excluded, 1 invalid, 0 duplicates"),
        "{stderr}"
    );
}

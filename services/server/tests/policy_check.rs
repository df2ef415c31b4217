//! `corridor policy check`: the offline validator a policy office runs on a
//! draft, with the same diagnostics as ValidatePolicy.

#![allow(clippy::expect_used)] // test code: a failure should stop loudly

use std::process::Command;

fn check(file: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["policy", "check"])
        .arg(file)
        .args(["--city", "hangzhou", "--province", "Zhejiang"])
        .output()
        .expect("run corridor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_default_policy_checks_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("policies/") {
        let path = entry.expect("entry").path();
        let (ok, out) = check(&path);
        assert!(ok, "{}: {out}", path.display());
        assert!(out.contains(": valid, "), "{out}");
        n += 1;
    }
    assert_eq!(n, 9);
}

#[test]
fn a_bad_draft_fails_with_located_diagnostics() {
    let dir = std::env::temp_dir().join(format!("corridor-policy-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("draft.cedar");
    std::fs::write(
        &file,
        "// draft\n@id(\"r1\")\n@outcome(\"RECOGNISED\")\npermit (principal, action, resource)\nwhen { resource.levle >= 3 };\n",
    )
    .expect("write");
    let (ok, out) = check(&file);
    assert!(!ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("draft.cedar:3:")
            && lines[0].contains("[r1]")
            && lines[0].contains("RECOGNISED"),
        "{out}"
    );
    assert!(
        lines[1].contains("draft.cedar:5:") && lines[1].contains("levle"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Regression (hardening issue, item 1): 200 nested parentheses aborted
/// `corridor policy check` with a stack overflow (SIGABRT). Now the draft is
/// refused with a located diagnostic and exit code 1.
#[test]
fn a_deeply_nested_draft_is_refused_not_fatal() {
    let dir = std::env::temp_dir().join(format!("corridor-policy-deep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("deep.cedar");
    std::fs::write(
        &file,
        format!(
            "@id(\"deep\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource)\nwhen {{ {}true{} }};\n",
            "(".repeat(200),
            ")".repeat(200)
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["policy", "check"])
        .arg(&file)
        .output()
        .expect("run corridor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("deep.cedar:4:") && stdout.contains("nest"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

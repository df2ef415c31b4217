//! The operator CLI (`corridor credential|recognition|keys|events ...`)
//! run in-process against a server, through its own argument parsing:
//! the answers, `--json`, and the exit codes scripts rely on.

use std::time::Duration;

use corridor_server::cli::Cli;
use corridor_server::client;
use corridor_tests::{TestApp, national_id};

/// Runs `corridor ARGS... --server URL` and returns (exit code, stdout, stderr).
async fn corridor(app: &TestApp, args: &[&str]) -> (u8, String, String) {
    let url = app.url();
    let argv = std::iter::once("corridor")
        .chain(args.iter().copied())
        .chain(["--server", url.as_str()]);
    let cli = Cli::parse_args(argv).expect("the command line parses");
    let group = cli.command.into_client().expect("a client command");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tokio::time::timeout(
        Duration::from_secs(30),
        client::run(group, &mut out, &mut err),
    )
    .await
    .expect("the command ends within 30 s");
    (
        code,
        String::from_utf8(out).expect("UTF-8 out"),
        String::from_utf8(err).expect("UTF-8 err"),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn issue_verify_recognize_revoke_verify_again_and_watch() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");
    let emp = app.verifier();
    let holder = national_id("11010519491231002");

    // Issue, as JSON: the canonical mapping.
    let (code, out, err) = corridor(
        &app,
        &[
            "credential",
            "issue",
            "--token",
            &hz,
            "--city",
            "hangzhou",
            "--category",
            "professional-title",
            "--series",
            "engineering",
            "--level",
            "4",
            "--title",
            "高级工程师",
            "--holder-name",
            "张三",
            "--holder-national-id",
            &holder,
            "--request-id",
            "cli-issue-1",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let issued = json(&out);
    let id = issued["credential"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_eq!(issued["credential"]["status"], "CREDENTIAL_STATUS_ACTIVE");
    assert_eq!(issued["credential"]["qualification"]["level"], 4);

    // get and list find it; the human listing is a table.
    let (code, out, _) =
        corridor(&app, &["credential", "get", &id, "--token", &hz, "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(json(&out)["credential"]["id"], id.as_str());
    let (code, out, _) = corridor(&app, &["credential", "list", "--token", &hz]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("ID "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&id) && l.contains("ACTIVE")),
        "{out}"
    );

    // Valid, bound to the holder: exit 0.
    let (code, out, err) = corridor(
        &app,
        &[
            "credential",
            "verify",
            &id,
            "--holder-national-id",
            &holder,
            "--token",
            &emp,
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("valid: yes"), "{out}");

    // Songjiang: CONDITIONAL with 3 months, RECOGNIZED with 6.
    let sj = app.token(
        "songjiang-talent-office",
        Some("songjiang"),
        &["recognizer"],
    );
    let (code, out, err) = corridor(
        &app,
        &[
            "recognition",
            "request",
            "--credential",
            &id,
            "--city",
            "songjiang",
            "--local-social-insurance-months",
            "3",
            "--token",
            &sj,
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let rec = json(&out);
    assert_eq!(
        rec["recognition"]["outcome"],
        "RECOGNITION_OUTCOME_CONDITIONAL"
    );
    let rec_id = rec["recognition"]["id"].as_str().expect("an id").to_owned();
    let (code, out, err) = corridor(
        &app,
        &[
            "recognition",
            "update-facts",
            &rec_id,
            "--local-social-insurance-months",
            "6",
            "--token",
            &sj,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("RECOGNIZED"), "{out}");
    assert!(
        out.contains("request id:"),
        "a fresh request id is shown: {out}"
    );

    // Revoke with a given request id (shown, for a retry).
    let (code, out, err) = corridor(
        &app,
        &[
            "credential",
            "revoke",
            &id,
            "--reason",
            "obtained by fraud",
            "--request-id",
            "cli-revoke-1",
            "--token",
            &hz,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("REVOKED"), "{out}");
    assert!(out.contains("cli-revoke-1"), "{out}");

    // Not valid any more: exit 6, still the whole answer.
    let (code, out, _) = corridor(&app, &["credential", "verify", &id, "--token", &emp]).await;
    assert_eq!(code, client::exit::NOT_VALID, "{out}");
    assert!(out.starts_with("valid: NO"), "{out}");
    assert!(out.contains("revoked: obtained by fraud"), "{out}");
    let (code, out, _) = corridor(
        &app,
        &["credential", "verify", &id, "--token", &emp, "--json"],
    )
    .await;
    assert_eq!(code, 6);
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["claims"]["credentialId"], id.as_str());
    assert_eq!(v["status"], "CREDENTIAL_STATUS_REVOKED");

    // The recognition followed its credential.
    let (code, out, _) = corridor(
        &app,
        &["recognition", "get", &rec_id, "--token", &sj, "--json"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        json(&out)["recognition"]["status"],
        "RECOGNITION_STATUS_VOID"
    );

    // The change stream of this credential: issued, revoked; one JSON
    // object per line, then --limit ends it.
    let (code, out, err) = corridor(
        &app,
        &[
            "events",
            "watch",
            "--subject-id",
            &id,
            "--limit",
            "2",
            "--token",
            &app.admin(),
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let actions: Vec<String> = out
        .lines()
        .map(|l| json(l)["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(actions, ["credential.issued", "credential.revoked"]);
}

#[tokio::test]
async fn refusals_exit_with_their_code_and_name_the_fields() {
    let app = TestApp::spawn().await;
    let hz = app.issuer("hangzhou");

    // NOT_FOUND: 4.
    let missing = "0195f0e0-0000-7000-8000-000000000000";
    let (code, out, err) = corridor(&app, &["credential", "get", missing, "--token", &hz]).await;
    assert_eq!(code, client::exit::NOT_FOUND, "{err}");
    assert!(out.is_empty());
    assert!(err.starts_with("error: NOT_FOUND (NOT_FOUND): "), "{err}");

    // PERMISSION_DENIED (an employer cannot issue) and UNAUTHENTICATED: 5.
    let a = &app;
    let issue = |token: Option<String>, national: String| async move {
        let mut args = vec![
            "credential".to_owned(),
            "issue".into(),
            "--city".into(),
            "hangzhou".into(),
            "--category".into(),
            "professional-title".into(),
            "--series".into(),
            "engineering".into(),
            "--level".into(),
            "4".into(),
            "--title".into(),
            "高级工程师".into(),
            "--holder-name".into(),
            "张三".into(),
            "--holder-national-id".into(),
            national,
        ];
        if let Some(t) = token {
            args.extend(["--token".into(), t]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        corridor(a, &args).await
    };
    let good = national_id("11010519491231002");
    let (code, _, err) = issue(Some(app.verifier()), good.clone()).await;
    assert_eq!(code, client::exit::DENIED, "{err}");
    assert!(err.starts_with("error: PERMISSION_DENIED"), "{err}");
    let (code, _, err) = issue(None, good).await;
    assert_eq!(code, client::exit::DENIED, "{err}");
    assert!(err.starts_with("error: UNAUTHENTICATED"), "{err}");

    // INVALID_ARGUMENT: 3, with the violated field.
    let (code, _, err) = issue(Some(hz.clone()), "110105194912310021".into()).await;
    assert_eq!(code, client::exit::REFUSED, "{err}");
    assert!(
        err.starts_with("error: INVALID_ARGUMENT (INVALID_FIELDS): "),
        "{err}"
    );
    assert!(err.contains("\n  holder_national_id: "), "{err}");

    // Public: the keys need no token.
    let (code, out, err) = corridor(&app, &["keys", "list", "--city", "hangzhou"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("hangzhou") && l.contains("CURRENT")),
        "{out}"
    );
}

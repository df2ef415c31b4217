//! BatchIssueCredentials: each item on its own, one result per item, and a
//! retried batch stores nothing new.

use corridor_proto::v1;
use corridor_proto::v1::batch_issue_result::Result as ItemResult;
use corridor_tests::{TestApp, authed, violated_fields};
use tonic::Code;

use crate::support::issue_request;

fn batch(items: Vec<v1::IssueCredentialRequest>) -> v1::BatchIssueCredentialsRequest {
    v1::BatchIssueCredentialsRequest { items }
}

/// Five items: three good, one with a bad national ID, one for another city.
fn mixed() -> Vec<v1::IssueCredentialRequest> {
    let mut bad_id = issue_request("b-1", "hangzhou", "33010619900101124");
    bad_id.holder_national_id = "330106199001011".into();
    vec![
        issue_request("b-0", "hangzhou", "33010619900101123"),
        bad_id,
        issue_request("b-2", "hangzhou", "33010619900101125"),
        issue_request("b-3", "suzhou", "32050619900101126"),
        issue_request("b-4", "hangzhou", "33010619900101127"),
    ]
}

fn ids(r: &v1::BatchIssueCredentialsResponse) -> Vec<Option<String>> {
    r.results
        .iter()
        .map(|x| match &x.result {
            Some(ItemResult::Credential(c)) => Some(c.id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_batch_stores_exactly_its_good_items_and_a_retry_nothing_new() {
    let app = TestApp::spawn().await;
    let token = app.issuer("hangzhou");
    let mut client = app.credentials().await;
    let first = client
        .batch_issue_credentials(authed(batch(mixed()), &token))
        .await
        .expect("the batch is answered")
        .into_inner();
    assert_eq!(first.results.len(), 5);
    for (i, r) in first.results.iter().enumerate() {
        assert_eq!(r.index, i as i32);
    }
    let got = ids(&first);
    assert!(
        got[0].is_some() && got[2].is_some() && got[4].is_some(),
        "{got:?}"
    );
    match &first.results[1].result {
        Some(ItemResult::Error(e)) => {
            assert_eq!(e.code, Code::InvalidArgument as i32, "{e:?}");
            let fields: Vec<&str> = e
                .field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect();
            assert_eq!(fields, ["holder_national_id"], "{e:?}");
        }
        other => panic!("item 1 should fail on its national ID: {other:?}"),
    }
    match &first.results[3].result {
        Some(ItemResult::Error(e)) => assert_eq!(e.code, Code::PermissionDenied as i32, "{e:?}"),
        other => panic!("item 3 is another city's: {other:?}"),
    }
    let stored = "SELECT count(*)::bigint AS n FROM credentials";
    let issued =
        "SELECT count(*)::bigint AS n FROM audit_events WHERE action = 'credential.issued'";
    assert_eq!(app.count(stored).await, 3);
    let events = app.count(issued).await;
    assert_eq!(events, 3);

    // The same batch again: the same credentials, nothing new stored.
    let again = client
        .batch_issue_credentials(authed(batch(mixed()), &token))
        .await
        .expect("the retry is answered")
        .into_inner();
    assert_eq!(ids(&again), got);
    assert_eq!(app.count(stored).await, 3);
    assert_eq!(app.count(issued).await, events);

    // Each issued item verifies like any credential.
    let cred = match &again.results[0].result {
        Some(ItemResult::Credential(c)) => c.clone(),
        _ => unreachable!(),
    };
    let v = crate::support::verify_id(&app, &cred.id).await;
    assert!(v.valid);
}

#[tokio::test]
async fn batches_are_checked_as_a_whole_only_for_their_size_and_caller() {
    let app = TestApp::spawn().await;
    let token = app.issuer("hangzhou");
    let mut client = app.credentials().await;

    let empty = client
        .batch_issue_credentials(authed(batch(vec![]), &token))
        .await
        .expect_err("an empty batch");
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&empty), ["items"]);

    let many: Vec<_> = (0..1001)
        .map(|i| issue_request(&format!("m-{i}"), "hangzhou", "33010619900101123"))
        .collect();
    let too_many = client
        .batch_issue_credentials(authed(batch(many), &token))
        .await
        .expect_err("1,001 items");
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert_eq!(
        app.count("SELECT count(*)::bigint AS n FROM credentials")
            .await,
        0
    );

    // A request id twice in one batch: the second is refused, the first issued.
    let twice = client
        .batch_issue_credentials(authed(
            batch(vec![
                issue_request("d-1", "hangzhou", "33010619900101123"),
                issue_request("d-1", "hangzhou", "33010619900101123"),
            ]),
            &token,
        ))
        .await
        .expect("answered")
        .into_inner();
    assert!(matches!(
        twice.results[0].result,
        Some(ItemResult::Credential(_))
    ));
    match &twice.results[1].result {
        Some(ItemResult::Error(e)) => {
            assert_eq!(e.code, Code::InvalidArgument as i32);
            assert_eq!(e.field_violations[0].field, "request_id");
        }
        other => panic!("a repeated request id: {other:?}"),
    }

    // Who may call: an issuer; not a verifier, not without a token.
    let one = || batch(vec![issue_request("w-1", "hangzhou", "33010619900101123")]);
    let denied = client
        .batch_issue_credentials(authed(one(), &app.verifier()))
        .await
        .expect_err("a verifier");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = client
        .batch_issue_credentials(one())
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn importing_a_csv_file_issues_its_good_rows_once_and_names_the_others() {
    use corridor_server::import::{ImportOptions, import};
    let app = TestApp::spawn().await;
    let id = corridor_tests::national_id;
    // Line 1 is the header. The row on line 5 spans two lines (a quoted
    // newline, which the server refuses in a title), so the rows after it
    // start on lines 7, 8 and 9.
    let csv = format!(
        "issuer_city,category,series,level,title,holder_name,holder_national_id,request_id\n\
         hangzhou,PROFESSIONAL_TITLE,engineering,4,高级工程师,张三,{},\n\
         hangzhou,SKILL_LEVEL,electrician,3,电工,李四,{},given-id-1\n\
         hangzhou,PROFESSIONAL_TITLE,engineering,4,工程师,王五,330106199001011,\n\
         hangzhou,PROFESSIONAL_TITLE,engineering,3,\"工程\n师\",赵六,{},\n\
         hangzhou,NO_SUCH_CATEGORY,engineering,3,工程师,钱七,{},\n\
         hangzhou,PROFESSIONAL_TITLE,engineering,x,工程师,孙八,{},\n\
         suzhou,PROFESSIONAL_TITLE,engineering,4,高级工程师,周九,{},\n",
        id("33010619900101123"),
        id("33010619900101125"),
        id("33010619900101127"),
        id("33010619900101129"),
        id("33010619900101131"),
        id("32050619900101133"),
    );
    let opts = ImportOptions {
        server: app.url(),
        token: app.issuer("hangzhou"),
        batch: 2,
        progress: false,
        ca_cert: None,
        client_cert: None,
    };
    let report = import(csv.as_bytes(), &opts).await.expect("import");
    assert_eq!(report.rows, 7);
    assert_eq!(report.issued, 2, "{report:?}");
    let rejected: Vec<(u64, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.code.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (4, "InvalidArgument"),
            (5, "InvalidArgument"),
            (7, "InvalidArgument"),
            (8, "InvalidArgument"),
            (9, "PermissionDenied"),
        ],
        "{report:?}"
    );
    assert_eq!(report.rejected[0].fields, ["holder_national_id"]);
    assert_eq!(report.rejected[1].fields, ["qualification.title"]);
    assert_eq!(report.rejected[2].fields, ["category"]);
    let stored = "SELECT count(*)::bigint AS n FROM credentials";
    assert_eq!(app.count(stored).await, 2);

    // The same file again: derived request ids make it a no-op.
    let again = import(csv.as_bytes(), &opts).await.expect("import again");
    assert_eq!(again.issued, 2);
    assert_eq!(again.rejected.len(), 5);
    assert_eq!(app.count(stored).await, 2);

    // A token that may not issue stops the import with the server's reason.
    let refused = import(
        csv.as_bytes(),
        &ImportOptions {
            token: app.verifier(),
            ..opts
        },
    )
    .await
    .expect_err("a verifier cannot import");
    assert!(
        format!("{refused:#}").contains("PermissionDenied"),
        "{refused:#}"
    );
}

#[tokio::test]
async fn a_large_batch_is_written_in_multi_row_statements_in_its_order() {
    let app = TestApp::spawn().await;
    let token = app.issuer("hangzhou");
    let mut client = app.credentials().await;
    let n = 300;
    let items: Vec<v1::IssueCredentialRequest> = (0..n)
        .map(|i| {
            let mut r = issue_request(&format!("m-{i}"), "hangzhou", "33010619900101123");
            r.holder_name = format!("持证人{i}");
            r
        })
        .collect();
    let first = client
        .batch_issue_credentials(authed(batch(items.clone()), &token))
        .await
        .expect("answered")
        .into_inner();
    let got = ids(&first);
    assert!(
        got.iter().all(Option::is_some),
        "{:?}",
        first
            .results
            .iter()
            .find(|r| !matches!(r.result, Some(ItemResult::Credential(_))))
    );
    assert_eq!(
        app.count("SELECT count(*)::bigint AS n FROM credentials")
            .await,
        n
    );
    // Two statements of at most 250 rows: two transactions wrote all 300
    // credentials and their events (one by one would be 300).
    assert_eq!(
        app.count(
            "SELECT count(DISTINCT txid)::bigint AS n FROM audit_events WHERE action = 'credential.issued'"
        )
        .await,
        2
    );
    // The events are in the batch's order.
    let out_of_order = "SELECT count(*)::bigint AS n FROM (
          SELECT c.holder_name, lag(c.holder_name) OVER (ORDER BY e.seq) AS prev
          FROM audit_events e JOIN credentials c ON c.id::text = e.subject_id
          WHERE e.action = 'credential.issued') x
        WHERE prev IS NOT NULL
          AND substring(holder_name from 4)::int < substring(prev from 4)::int";
    assert_eq!(app.count(out_of_order).await, 0);
    // Every answer is the stored credential, and a retry stores nothing new.
    let again = client
        .batch_issue_credentials(authed(batch(items), &token))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(ids(&again), got);
    assert_eq!(
        app.count("SELECT count(*)::bigint AS n FROM credentials")
            .await,
        n
    );
    let some = got[123].clone().expect("id");
    assert!(crate::support::verify_id(&app, &some).await.valid);
}

//! Request builders shared by the test modules.

use corridor_proto::v1;
use corridor_tests::{TestApp, authed, national_id};

/// A Hangzhou 副高级 engineering title for holder `id17` (17 digits).
pub fn issue_request(request_id: &str, city: &str, id17: &str) -> v1::IssueCredentialRequest {
    v1::IssueCredentialRequest {
        request_id: request_id.into(),
        issuer_city: city.into(),
        qualification: Some(v1::Qualification {
            category: v1::QualificationCategory::ProfessionalTitle.into(),
            series: "engineering".into(),
            level: 4,
            title: "高级工程师".into(),
        }),
        holder_name: "张三".into(),
        holder_national_id: national_id(id17),
        valid_from: None,
        valid_until: None,
    }
}

/// Issues a credential in `city` and returns it.
pub async fn issue(app: &TestApp, city: &str, request_id: &str) -> v1::Credential {
    app.credentials()
        .await
        .issue_credential(authed(
            issue_request(request_id, city, "33010619900101123"),
            &app.issuer(city),
        ))
        .await
        .expect("issue")
        .into_inner()
        .credential
        .expect("credential")
}

/// Verifies by id as an employer.
pub async fn verify_id(app: &TestApp, id: &str) -> v1::VerifyCredentialResponse {
    app.verification()
        .await
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::CredentialId(
                    id.into(),
                )),
                holder_national_id: String::new(),
                recognition_city: String::new(),
            },
            &app.verifier(),
        ))
        .await
        .expect("verify")
        .into_inner()
}

/// Verifies a token as an employer, optionally binding a holder ID.
pub async fn verify_token(
    app: &TestApp,
    token: &str,
    holder: &str,
) -> v1::VerifyCredentialResponse {
    app.verification()
        .await
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::Token(
                    token.into(),
                )),
                holder_national_id: holder.into(),
                recognition_city: String::new(),
            },
            &app.verifier(),
        ))
        .await
        .expect("verify")
        .into_inner()
}

/// The outcome of `check` in a response.
pub fn outcome(
    resp: &v1::VerifyCredentialResponse,
    check: v1::VerificationCheck,
) -> v1::CheckOutcome {
    resp.checks
        .iter()
        .find(|c| c.check == check as i32)
        .and_then(|c| v1::CheckOutcome::try_from(c.outcome).ok())
        .unwrap_or(v1::CheckOutcome::Unspecified)
}

/// Audit actions recorded for a subject, in order.
pub async fn audit_actions(app: &TestApp, subject_id: &str) -> Vec<String> {
    use corridor_server::store::entities::audit_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    audit_event::Entity::find()
        .filter(audit_event::Column::SubjectId.eq(subject_id))
        .order_by_asc(audit_event::Column::Seq)
        .all(&app.db)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// Waits (bounded) until the audit trail of `subject_id` holds `n` events
/// with `action`: verification events are written by a background batcher.
pub async fn wait_for_audit(
    app: &TestApp,
    subject_id: &str,
    action: &str,
    n: usize,
) -> Vec<String> {
    for _ in 0..100 {
        let actions = audit_actions(app, subject_id).await;
        if actions.iter().filter(|a| *a == action).count() >= n {
            return actions;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    audit_actions(app, subject_id).await
}

/// Rotates `city`'s issuer key through `channel` (the app's, or another
/// replica's) as the corridor administrator; the new current key's id.
pub async fn rotate_key(
    app: &TestApp,
    channel: tonic::transport::Channel,
    city: &str,
    request_id: &str,
) -> String {
    v1::city_registry_service_client::CityRegistryServiceClient::new(channel)
        .rotate_issuer_key(authed(
            v1::RotateIssuerKeyRequest {
                request_id: request_id.into(),
                city: city.into(),
            },
            &app.admin(),
        ))
        .await
        .unwrap()
        .into_inner()
        .current_key
        .unwrap()
        .kid
}

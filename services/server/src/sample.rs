//! Sample data for `corridor --dev serve`: a few credentials issued through
//! the real `IssueCredential` handler (with development tokens), so that a
//! first run has something to list and verify. Idempotent: the request ids
//! are fixed, so restarting does not issue them again.

use chrono::Utc;
use corridor_domain::holder::NationalId;
use corridor_proto::v1;
use corridor_proto::v1::credential_service_server::CredentialService;

use crate::api::credentials::Credentials;
use crate::config::{Settings, dev_identity_minter};
use crate::state::AppState;

/// (city, category, series, level, title, holder name, first 17 ID digits).
const SAMPLES: [(&str, v1::QualificationCategory, &str, i32, &str, &str, &str); 3] = [
    (
        "hangzhou",
        v1::QualificationCategory::ProfessionalTitle,
        "engineering",
        4,
        "高级工程师",
        "样例·王工",
        "33010619850101001",
    ),
    (
        "hefei",
        v1::QualificationCategory::SkillLevel,
        "electrician",
        5,
        "技师",
        "样例·李师傅",
        "34010419900202002",
    ),
    (
        "suzhou",
        v1::QualificationCategory::ForeignWorkPermit,
        "foreign-expert",
        3,
        "外国高端人才（A类）",
        "Sample Expert",
        "91320500198803030",
    ),
];

/// Issues the sample credentials unless already issued.
pub async fn seed(state: &AppState, settings: &Settings) -> anyhow::Result<()> {
    let handler = Credentials::new(state.clone());
    let (minter, _) = dev_identity_minter(&settings.identity.audience);
    for (i, (city, category, series, level, title, name, id17)) in SAMPLES.into_iter().enumerate() {
        let token = minter.mint(
            "dev-sample-seeder",
            Some(city),
            &["issuer"],
            Utc::now(),
            chrono::Duration::minutes(1),
        )?;
        let national_id =
            NationalId::with_check_digit(id17).ok_or_else(|| anyhow::anyhow!("bad sample id"))?;
        let mut req = tonic::Request::new(v1::IssueCredentialRequest {
            request_id: format!("dev-sample-{i}"),
            issuer_city: city.to_owned(),
            qualification: Some(v1::Qualification {
                category: category.into(),
                series: series.to_owned(),
                level,
                title: title.to_owned(),
            }),
            holder_name: name.to_owned(),
            holder_national_id: national_id,
            valid_from: None,
            valid_until: None,
        });
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let c = handler
            .issue_credential(req)
            .await
            .map_err(|s| anyhow::anyhow!("sample issuance failed: {s}"))?
            .into_inner()
            .credential
            .ok_or_else(|| anyhow::anyhow!("no credential"))?;
        tracing::info!(id = %c.id, city, "sample credential");
    }
    Ok(())
}

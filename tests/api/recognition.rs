//! RecognitionService and PolicyService against Postgres: the brief's default
//! rules as golden tables, versioned and future policies, diagnostics,
//! simulation, the cascade from credential status, and who may do what.

use corridor_proto::v1;
use corridor_proto::v1::policy_service_client::PolicyServiceClient;
use corridor_proto::v1::recognition_service_client::RecognitionServiceClient;
use corridor_tests::{TestApp, authed, count_in, national_id, violated_fields};
use tonic::Code;
use tonic::transport::Channel;
use v1::QualificationCategory as Cat;
use v1::RecognitionOutcome as O;

use crate::support::*;

const CITIES: [(&str, &str); 9] = [
    ("hangzhou", "Zhejiang"),
    ("hefei", "Anhui"),
    ("huzhou", "Zhejiang"),
    ("jiaxing", "Zhejiang"),
    ("jinhua", "Zhejiang"),
    ("songjiang", "Shanghai"),
    ("suzhou", "Jiangsu"),
    ("wuhu", "Anhui"),
    ("xuancheng", "Anhui"),
];

fn province(city: &str) -> &'static str {
    CITIES
        .iter()
        .find(|(c, _)| *c == city)
        .map(|(_, p)| *p)
        .unwrap()
}

#[derive(Clone, Copy, Default)]
struct F {
    insurance: Option<i32>,
    employer: Option<bool>,
    experience: Option<i32>,
    civil_servant: Option<bool>,
}

impl F {
    fn api(self) -> v1::RecognitionFacts {
        v1::RecognitionFacts {
            local_social_insurance_months: self.insurance,
            local_employer_registered: self.employer,
            years_of_experience: self.experience,
            holds_local_license: None,
            civil_servant: self.civil_servant,
        }
    }
}

/// The brief's default rules, written out independently of the Cedar files:
/// (outcome, mapped level).
fn expected(cat: Cat, series: &str, level: i32, source: &str, target: &str, f: F) -> (O, i32) {
    if source == target {
        return (O::Rejected, 0);
    }
    let src_prov = province(source);
    match cat {
        Cat::PracticeLicense => (O::Referred, 0),
        Cat::ProfessionalTitle if series == "health" || series == "law" => (O::Referred, 0),
        Cat::ProfessionalTitle => {
            if target == "songjiang" && level == 4 && src_prov != "Shanghai" {
                if f.insurance.unwrap_or(0) >= 6 {
                    (O::Recognized, 4)
                } else {
                    (O::Conditional, 4)
                }
            } else {
                (O::Recognized, level)
            }
        }
        Cat::SkillLevel => {
            if target == "suzhou" && src_prov == "Anhui" && f.experience.unwrap_or(0) < 3 {
                (O::Downgraded, (level - 1).max(1))
            } else {
                (O::Recognized, level)
            }
        }
        Cat::ForeignWorkPermit => match level {
            3 => (O::Recognized, 3),
            2 if f.employer == Some(true) => (O::Recognized, 2),
            2 => (O::Conditional, 2),
            _ => (O::Rejected, 0),
        },
        Cat::TalentTier => match target {
            "hangzhou" | "songjiang" | "suzhou" => {
                if f.civil_servant == Some(true) {
                    (O::Rejected, 0)
                } else if f.insurance.unwrap_or(0) >= 12 {
                    (O::Recognized, level)
                } else {
                    (O::Conditional, level)
                }
            }
            "xuancheng" | "wuhu" => (O::Recognized, level),
            _ => (O::Rejected, 0),
        },
        Cat::Unspecified => unreachable!(),
    }
}

fn q(cat: Cat, series: &str, level: i32) -> v1::Qualification {
    v1::Qualification {
        category: cat.into(),
        series: series.into(),
        level,
        title: format!("{series} {level}"),
    }
}

/// Every kind of qualification the default rules speak about.
fn qualifications() -> Vec<v1::Qualification> {
    vec![
        q(Cat::ProfessionalTitle, "engineering", 5),
        q(Cat::ProfessionalTitle, "engineering", 4),
        q(Cat::ProfessionalTitle, "economics", 3),
        q(Cat::ProfessionalTitle, "health", 5),
        q(Cat::ProfessionalTitle, "law", 4),
        q(Cat::PracticeLicense, "physician", 1),
        q(Cat::SkillLevel, "electrician", 5),
        q(Cat::SkillLevel, "cnc-machinist", 1),
        q(Cat::ForeignWorkPermit, "foreign-expert", 3),
        q(Cat::ForeignWorkPermit, "foreign-expert", 2),
        q(Cat::ForeignWorkPermit, "foreign-expert", 1),
        q(Cat::TalentTier, "city-talent", 3),
    ]
}

async fn rec(app: &TestApp) -> RecognitionServiceClient<Channel> {
    RecognitionServiceClient::new(app.raw_channel().await)
}

async fn pol(app: &TestApp) -> PolicyServiceClient<Channel> {
    PolicyServiceClient::new(app.raw_channel().await)
}

fn recognizer(app: &TestApp, city: &str) -> String {
    app.token(
        &format!("{city}-talent-office"),
        Some(city),
        &["recognizer"],
    )
}

fn policy_admin(app: &TestApp, city: &str) -> String {
    app.token(
        &format!("{city}-policy-office"),
        Some(city),
        &["policy_admin"],
    )
}

async fn issue_q(app: &TestApp, city: &str, rid: &str, q: v1::Qualification) -> v1::Credential {
    let mut req = issue_request(rid, city, "34010419900202002");
    req.qualification = Some(q);
    app.credentials()
        .await
        .issue_credential(authed(req, &app.issuer(city)))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap()
}

async fn request(
    app: &TestApp,
    rid: &str,
    cred: &str,
    target: &str,
    f: F,
) -> Result<v1::Recognition, tonic::Status> {
    rec(app)
        .await
        .request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: rid.into(),
                credential_id: cred.into(),
                target_city: target.into(),
                facts: Some(f.api()),
            },
            &recognizer(app, target),
        ))
        .await
        .map(|r| r.into_inner().recognition.unwrap())
}

async fn evaluate(
    app: &TestApp,
    cred: &str,
    target: &str,
    as_of: Option<i64>,
) -> v1::EvaluateRecognitionResponse {
    rec(app)
        .await
        .evaluate_recognition(authed(
            v1::EvaluateRecognitionRequest {
                credential_id: cred.into(),
                target_city: target.into(),
                facts: None,
                as_of: as_of.map(|s| prost_types::Timestamp {
                    seconds: s,
                    nanos: 0,
                }),
            },
            &recognizer(app, target),
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn golden_matrix_every_default_rule_in_every_city() {
    let app = TestApp::spawn().await;
    let mut client = rec(&app).await;
    let token = app.verifier();
    let facts = [
        F::default(),
        F {
            insurance: Some(6),
            ..F::default()
        },
        F {
            insurance: Some(12),
            employer: Some(true),
            experience: Some(3),
            civil_servant: Some(false),
        },
        F {
            civil_servant: Some(true),
            insurance: Some(24),
            ..F::default()
        },
        F {
            experience: Some(2),
            insurance: Some(5),
            employer: Some(false),
            ..F::default()
        },
    ];
    let mut checked = 0;
    for qual in qualifications() {
        for f in facts {
            let m = client
                .get_recognition_matrix(authed(
                    v1::GetRecognitionMatrixRequest {
                        qualification: Some(qual.clone()),
                        facts: Some(f.api()),
                        as_of: None,
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(m.cities.len(), 9);
            assert_eq!(m.cells.len(), 81);
            for cell in &m.cells {
                let cat = Cat::try_from(qual.category).unwrap();
                let (o, l) = expected(
                    cat,
                    &qual.series,
                    qual.level,
                    &cell.source_city,
                    &cell.target_city,
                    f,
                );
                assert_eq!(
                    (O::try_from(cell.outcome).unwrap(), cell.mapped_level),
                    (o, l),
                    "{} {} L{} from {} into {} with facts {:?}: rules {:?}",
                    qual.series,
                    cat.as_str_name(),
                    qual.level,
                    cell.source_city,
                    cell.target_city,
                    f.api(),
                    cell.deciding_rules
                );
                if cell.source_city != cell.target_city {
                    assert_eq!(cell.policy_version, 1);
                    assert_eq!(cell.deciding_rules.len(), 1, "{cell:?}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 12 * 5 * 81);
}

#[tokio::test]
async fn songjiang_conditional_then_recognized_and_suzhou_downgrade() {
    let app = TestApp::spawn().await;
    let title = issue_q(
        &app,
        "hefei",
        "t4",
        q(Cat::ProfessionalTitle, "engineering", 4),
    )
    .await;
    let r = request(&app, "sj-1", &title.id, "songjiang", F::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, O::Conditional as i32);
    assert_eq!(r.mapped_level, 4);
    assert_eq!(r.status, v1::RecognitionStatus::Open as i32);
    let e = r.explanation.clone().unwrap();
    assert_eq!(e.policy_version, 1);
    assert_eq!(e.deciding_rules, ["titles-deputy-senior-outside-shanghai"]);
    assert_eq!(e.unmet_conditions.len(), 1);
    // Every rule that did not apply says which of its conditions failed.
    let not_applied: Vec<(String, String)> = e
        .rules_not_applied
        .iter()
        .map(|r| (r.rule_id.clone(), r.failed_condition.clone()))
        .collect();
    assert!(
        not_applied.contains(&(
            "skills-same-level".into(),
            "resource.category == \"SKILL_LEVEL\"".into()
        )),
        "{not_applied:?}"
    );
    assert!(
        not_applied.contains(&(
            "work-permit-class-a".into(),
            "resource.category == \"FOREIGN_WORK_PERMIT\"".into()
        )),
        "{not_applied:?}"
    );
    assert_eq!(
        not_applied.len() + e.matched_rules.len(),
        9,
        "songjiang has 9 rules"
    );
    assert!(
        e.unmet_conditions[0].contains("local_social_insurance_months >= 6"),
        "{e:?}"
    );

    // The attestation is signed by Songjiang and points at the credential.
    let keys = app
        .cities()
        .await
        .get_issuer_keys(v1::GetIssuerKeysRequest {
            city: "songjiang".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let key = jsonwebtoken::DecodingKey::from_ed_components(&keys.keys[0].x).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let att = jsonwebtoken::decode::<serde_json::Value>(&r.attestation, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(
        att["credentialSubject"]["id"],
        format!("urn:uuid:{}", title.id)
    );
    assert_eq!(att["issuer"], "urn:g60:city:songjiang");
    assert_eq!(
        att["credentialSubject"]["recognition"]["outcome"],
        "CONDITIONAL"
    );

    // Five months are not enough; six are.
    let mut client = rec(&app).await;
    let sj = recognizer(&app, "songjiang");
    let upd = |rid: &str, months: i32| v1::UpdateRecognitionFactsRequest {
        request_id: rid.into(),
        id: r.id.clone(),
        facts: Some(
            F {
                insurance: Some(months),
                ..F::default()
            }
            .api(),
        ),
    };
    let r5 = client
        .update_recognition_facts(authed(upd("u5", 5), &sj))
        .await
        .unwrap()
        .into_inner()
        .recognition
        .unwrap();
    assert_eq!(r5.outcome, O::Conditional as i32);
    let r6 = client
        .update_recognition_facts(authed(upd("u6", 6), &sj))
        .await
        .unwrap()
        .into_inner()
        .recognition
        .unwrap();
    assert_eq!(r6.outcome, O::Recognized as i32);
    assert_eq!(r6.mapped_level, 4);
    assert_eq!(r6.status, v1::RecognitionStatus::Decided as i32);
    assert_eq!(r6.id, r.id);
    assert_eq!(r6.facts.unwrap().local_social_insurance_months, Some(6));
    // A decided recognition is not re-decided.
    let err = client
        .update_recognition_facts(authed(upd("u7", 12), &sj))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let got = client
        .get_recognition(authed(v1::GetRecognitionRequest { id: r.id.clone() }, &sj))
        .await
        .unwrap()
        .into_inner()
        .recognition
        .unwrap();
    assert_eq!(got.outcome, O::Recognized as i32);
    assert_eq!(
        audit_actions(&app, &r.id).await,
        [
            "recognition.decided",
            "recognition.redecided",
            "recognition.redecided"
        ]
    );

    // Suzhou: a Hefei level-5 skill certificate is DOWNGRADED to 4, or
    // RECOGNIZED at 5 with three years of experience.
    let skill = issue_q(&app, "hefei", "s5", q(Cat::SkillLevel, "electrician", 5)).await;
    let d = request(&app, "sz-1", &skill.id, "suzhou", F::default())
        .await
        .unwrap();
    assert_eq!((d.outcome, d.mapped_level), (O::Downgraded as i32, 4));
    assert_eq!(d.status, v1::RecognitionStatus::Decided as i32);
    let d = request(
        &app,
        "sz-2",
        &skill.id,
        "suzhou",
        F {
            experience: Some(3),
            ..F::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((d.outcome, d.mapped_level), (O::Recognized as i32, 5));
    assert_eq!(
        d.explanation.unwrap().deciding_rules,
        ["skills-anhui-experienced"]
    );

    // A health title is REFERRED everywhere, although titles-same-level matches too.
    let health = issue_q(&app, "hefei", "h5", q(Cat::ProfessionalTitle, "health", 5)).await;
    for (city, _) in CITIES.iter().filter(|(c, _)| *c != "hefei") {
        let e = evaluate(&app, &health.id, city, None).await;
        assert_eq!(e.outcome, O::Referred as i32, "{city}");
        let ex = e.explanation.unwrap();
        assert_eq!(ex.deciding_rules, ["refer-licensed-professions"]);
        assert!(
            ex.matched_rules.contains(&"titles-same-level".to_owned()),
            "{ex:?}"
        );
    }
    // Same city: a guard rail, no policy consulted.
    let e = evaluate(&app, &health.id, "hefei", None).await;
    assert_eq!(e.outcome, O::Rejected as i32);
    assert_eq!(e.explanation.unwrap().deciding_rules, ["guard:same-city"]);
}

const TIGHTER_HANGZHOU: &str = r#"
@id("titles-suspended-pending-review")
@outcome("REJECTED")
@reason("all outside titles are under review")
forbid (principal, action == G60::Action::"recognize", resource)
when { resource.category == "PROFESSIONAL_TITLE" };

@id("skills-same-level")
@outcome("RECOGNIZED")
permit (principal, action == G60::Action::"recognize", resource)
when { resource.category == "SKILL_LEVEL" };
"#;

#[tokio::test]
async fn a_future_policy_changes_nothing_until_it_is_in_force() {
    let app = TestApp::spawn().await;
    let cred = issue_q(
        &app,
        "hefei",
        "f1",
        q(Cat::ProfessionalTitle, "engineering", 3),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let tomorrow = now + 86_400;
    let mut p = pol(&app).await;
    let admin = policy_admin(&app, "hangzhou");
    let v2 = p
        .publish_policy(authed(
            v1::PublishPolicyRequest {
                request_id: "p2".into(),
                city: "hangzhou".into(),
                source: TIGHTER_HANGZHOU.into(),
                effective_from: Some(prost_types::Timestamp {
                    seconds: tomorrow,
                    nanos: 0,
                }),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        v2.rule_ids,
        ["titles-suspended-pending-review", "skills-same-level"]
    );

    // Now: still version 1.
    let e = evaluate(&app, &cred.id, "hangzhou", None).await;
    assert_eq!(e.outcome, O::Recognized as i32);
    assert_eq!(e.explanation.unwrap().policy_version, 1);
    let r = request(&app, "r1", &cred.id, "hangzhou", F::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, O::Recognized as i32);
    // As of the day after tomorrow: version 2.
    let e = evaluate(&app, &cred.id, "hangzhou", Some(tomorrow + 86_400)).await;
    assert_eq!(e.outcome, O::Rejected as i32);
    let ex = e.explanation.unwrap();
    assert_eq!(ex.policy_version, 2);
    assert_eq!(ex.deciding_rules, ["titles-suspended-pending-review"]);
    // And just before it: version 1.
    let e = evaluate(&app, &cred.id, "hangzhou", Some(tomorrow - 1)).await;
    assert_eq!(
        (e.outcome, e.explanation.unwrap().policy_version),
        (O::Recognized as i32, 1)
    );

    // GetPolicy by as_of and by version; the list has both, newest first.
    let tok = app.verifier();
    let get = |version: i32, as_of: Option<i64>| v1::GetPolicyRequest {
        city: "hangzhou".into(),
        version,
        as_of: as_of.map(|s| prost_types::Timestamp {
            seconds: s,
            nanos: 0,
        }),
    };
    let g = p
        .get_policy(authed(get(0, None), &tok))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(g.version, 1);
    let g = p
        .get_policy(authed(get(0, Some(tomorrow + 10)), &tok))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(g.version, 2);
    assert_eq!(g.source, TIGHTER_HANGZHOU);
    let g = p
        .get_policy(authed(get(1, None), &tok))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(g.published_by, "system");
    let err = p.get_policy(authed(get(9, None), &tok)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let list = p
        .list_policy_versions(authed(
            v1::ListPolicyVersionsRequest {
                city: "hangzhou".into(),
                page_size: 1,
                page_token: String::new(),
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2]
    );
    let list = p
        .list_policy_versions(authed(
            v1::ListPolicyVersionsRequest {
                city: "hangzhou".into(),
                page_size: 1,
                page_token: list.next_page_token,
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1]
    );
    assert!(list.next_page_token.is_empty());
    assert_eq!(
        audit_actions(&app, "hangzhou/v2").await,
        ["policy.published"]
    );
}

#[tokio::test]
async fn invalid_policies_are_refused_with_located_diagnostics() {
    let app = TestApp::spawn().await;
    let mut p = pol(&app).await;
    let admin = policy_admin(&app, "hangzhou");
    let cases = [
        // (source, line the diagnostic must point at, a word the message must contain)
        (
            "// draft\n@id(\"a\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource)\nwhen { resource.catgory == \"SKILL_LEVEL\" };\n",
            5,
            "catgory",
        ),
        (
            "@id(\"b\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource)\nwhen { resource.level == \"four\" };\n",
            4,
            "",
        ),
        (
            "@id(\"c\")\n@outcome(\"ACCEPTED\")\npermit (principal, action, resource);\n",
            2,
            "ACCEPTED",
        ),
        (
            "@id(\"d\")\n@outcome(\"CONDITIONAL\")\n@condition(\"context.facts has yeers && context.facts.yeers >= 3\")\npermit (principal, action, resource);\n",
            3,
            "yeers",
        ),
    ];
    for (src, line, word) in cases {
        let err = p
            .publish_policy(authed(
                v1::PublishPolicyRequest {
                    request_id: format!("bad-{line}-{word}"),
                    city: "hangzhou".into(),
                    source: src.into(),
                    effective_from: None,
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{src}");
        let fields = violated_fields(&err);
        assert!(!fields.is_empty() && fields.iter().all(|f| f == "source"));
        use tonic_types::StatusExt;
        let details = err.get_details_bad_request().unwrap();
        let first = &details.field_violations[0].description;
        assert!(
            first.starts_with(&format!("{line}:")),
            "{first} (expected line {line})"
        );
        assert!(first.contains(word), "{first}");
        // ValidatePolicy says the same, as structured diagnostics.
        let v = p
            .validate_policy(authed(
                v1::ValidatePolicyRequest {
                    city: "hangzhou".into(),
                    source: src.into(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!v.valid);
        assert_eq!(v.diagnostics[0].line, line as u32, "{v:?}");
        assert!(v.diagnostics[0].column >= 1);
    }
    // Nothing was stored.
    let list = p
        .list_policy_versions(authed(
            v1::ListPolicyVersionsRequest {
                city: "hangzhou".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.versions.len(), 1);
    // The past is not rewritten.
    let err = p
        .publish_policy(authed(
            v1::PublishPolicyRequest {
                request_id: "past".into(),
                city: "hangzhou".into(),
                source: TIGHTER_HANGZHOU.into(),
                effective_from: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 86_400,
                    nanos: 0,
                }),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["effective_from"]);
    // A valid draft validates with its rule ids.
    let v = p
        .validate_policy(authed(
            v1::ValidatePolicyRequest {
                city: "hangzhou".into(),
                source: TIGHTER_HANGZHOU.into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(v.valid, "{v:?}");
    assert_eq!(v.rule_ids.len(), 2);
}

#[tokio::test]
async fn simulation_reports_exactly_the_decisions_that_change() {
    let app = TestApp::spawn().await;
    // Hangzhou's draft: the defaults plus Anhui skill levels one level lower.
    let base = include_str!("../../policies/hangzhou.cedar");
    let draft = format!(
        "{base}\n@id(\"skills-anhui-lower\")\n@outcome(\"DOWNGRADED\")\n@priority(\"10\")\n@level_offset(\"-1\")\npermit (principal, action == G60::Action::\"recognize\", resource)\nwhen {{ resource.category == \"SKILL_LEVEL\" && resource.issuer_province == \"Anhui\" }};\n"
    );
    let mut changed = Vec::new();
    let mut i = 0;
    for city in ["hefei", "wuhu", "suzhou", "songjiang", "hangzhou"] {
        for qual in [
            q(Cat::SkillLevel, "electrician", 5),
            q(Cat::ProfessionalTitle, "engineering", 4),
        ] {
            i += 1;
            let c = issue_q(&app, city, &format!("sim-{i}"), qual.clone()).await;
            if province(city) == "Anhui" && qual.category == Cat::SkillLevel as i32 {
                changed.push(c.id);
            }
        }
    }
    let resp = pol(&app)
        .await
        .simulate_policy(authed(
            v1::SimulatePolicyRequest {
                city: "hangzhou".into(),
                source: draft,
                max_credentials: 0,
                max_examples: 0,
                facts: None,
            },
            &policy_admin(&app, "hangzhou"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.baseline_version, 1);
    assert_eq!(
        resp.credentials_evaluated, 8,
        "Hangzhou's own credentials are not evaluated"
    );
    assert_eq!(resp.decisions_changed, 2);
    assert!(!resp.truncated);
    assert_eq!(resp.transitions.len(), 1);
    assert_eq!(
        (
            resp.transitions[0].from,
            resp.transitions[0].to,
            resp.transitions[0].count
        ),
        (O::Recognized as i32, O::Downgraded as i32, 2)
    );
    let mut ids: Vec<String> = resp
        .examples
        .iter()
        .map(|e| e.credential_id.clone())
        .collect();
    ids.sort();
    changed.sort();
    assert_eq!(ids, changed);
    assert!(
        resp.examples
            .iter()
            .all(|e| e.from_level == 5 && e.to_level == 4 && e.to_rules == ["skills-anhui-lower"])
    );

    // A bound on the work is honoured and reported.
    let resp = pol(&app)
        .await
        .simulate_policy(authed(
            v1::SimulatePolicyRequest {
                city: "hangzhou".into(),
                source: TIGHTER_HANGZHOU.into(),
                max_credentials: 3,
                max_examples: 1,
                facts: None,
            },
            &policy_admin(&app, "hangzhou"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.credentials_evaluated, 3);
    assert!(resp.truncated);
    assert!(resp.examples.len() <= 1);
    // Only the city's own policy office simulates.
    let err = pol(&app)
        .await
        .simulate_policy(authed(
            v1::SimulatePolicyRequest {
                city: "hangzhou".into(),
                source: TIGHTER_HANGZHOU.into(),
                ..Default::default()
            },
            &policy_admin(&app, "hefei"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn recognitions_follow_their_source_credential() {
    let app = TestApp::spawn().await;
    let cred = issue_q(
        &app,
        "hefei",
        "c1",
        q(Cat::ProfessionalTitle, "engineering", 3),
    )
    .await;
    let hz = request(&app, "hz", &cred.id, "hangzhou", F::default())
        .await
        .unwrap();
    let sz = request(&app, "sz", &cred.id, "suzhou", F::default())
        .await
        .unwrap();
    assert_eq!(hz.status, v1::RecognitionStatus::Decided as i32);
    let hf = app.issuer("hefei");
    let mut creds = app.credentials().await;
    let get = |id: String| async {
        let mut c = rec(&app).await;
        c.get_recognition(authed(
            v1::GetRecognitionRequest { id },
            &app.token("aud", None, &["auditor"]),
        ))
        .await
        .unwrap()
        .into_inner()
        .recognition
        .unwrap()
    };

    // Verify with a city reports the recorded recognition.
    let v = app
        .verification()
        .await
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::Token(
                    cred.token.clone(),
                )),
                holder_national_id: String::new(),
                recognition_city: "hangzhou".into(),
            },
            &app.verifier(),
        ))
        .await
        .unwrap()
        .into_inner();
    let report = v.recognition.unwrap();
    assert!(report.recorded);
    assert_eq!(report.recognition_id, hz.id);
    assert_eq!(report.outcome, O::Recognized as i32);

    creds
        .suspend_credential(authed(
            v1::SuspendCredentialRequest {
                request_id: "s".into(),
                id: cred.id.clone(),
                reason: "check".into(),
            },
            &hf,
        ))
        .await
        .unwrap();
    assert_eq!(
        get(hz.id.clone()).await.status,
        v1::RecognitionStatus::Suspended as i32
    );
    assert_eq!(
        get(sz.id.clone()).await.status,
        v1::RecognitionStatus::Suspended as i32
    );
    creds
        .reinstate_credential(authed(
            v1::ReinstateCredentialRequest {
                request_id: "r".into(),
                id: cred.id.clone(),
                reason: "ok".into(),
            },
            &hf,
        ))
        .await
        .unwrap();
    assert_eq!(
        get(hz.id.clone()).await.status,
        v1::RecognitionStatus::Decided as i32
    );
    creds
        .revoke_credential(authed(
            v1::RevokeCredentialRequest {
                request_id: "v".into(),
                id: cred.id.clone(),
                reason: "fraud".into(),
            },
            &hf,
        ))
        .await
        .unwrap();
    assert_eq!(
        get(hz.id.clone()).await.status,
        v1::RecognitionStatus::Void as i32
    );
    assert_eq!(
        get(sz.id.clone()).await.status,
        v1::RecognitionStatus::Void as i32
    );
    // Each recognition's own trail records each step of the cascade.
    for r in [&hz.id, &sz.id] {
        let actions = audit_actions(&app, r).await;
        for step in [
            "recognition.suspended",
            "recognition.restored",
            "recognition.voided",
        ] {
            assert_eq!(
                actions.iter().filter(|a| *a == step).count(),
                1,
                "{r}: {actions:?}"
            );
        }
    }

    // Verify with a city now reports it void; a new request is rejected by the guard rail.
    let v = app
        .verification()
        .await
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::CredentialId(
                    cred.id.clone(),
                )),
                holder_national_id: String::new(),
                recognition_city: "hangzhou".into(),
            },
            &app.verifier(),
        ))
        .await
        .unwrap()
        .into_inner();
    let report = v.recognition.unwrap();
    assert_eq!(
        (report.outcome, report.status),
        (O::Rejected as i32, v1::RecognitionStatus::Void as i32)
    );
    let again = request(&app, "hz-2", &cred.id, "hangzhou", F::default())
        .await
        .unwrap();
    assert_eq!(again.outcome, O::Rejected as i32);
    assert_eq!(again.explanation.unwrap().deciding_rules, ["guard:revoked"]);

    // Verify with a city without a recorded recognition: a dry run.
    let other = issue_q(&app, "hefei", "c2", q(Cat::SkillLevel, "electrician", 5)).await;
    let v = app
        .verification()
        .await
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::CredentialId(
                    other.id.clone(),
                )),
                holder_national_id: national_id("34010419900202002"),
                recognition_city: "suzhou".into(),
            },
            &app.verifier(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(v.valid);
    let report = v.recognition.unwrap();
    assert!(!report.recorded);
    assert_eq!(
        (report.outcome, report.mapped_level),
        (O::Downgraded as i32, 4)
    );
}

#[tokio::test]
async fn who_may_decide_publish_and_read() {
    let app = TestApp::spawn().await;
    let cred = issue_q(
        &app,
        "songjiang",
        "w1",
        q(Cat::ProfessionalTitle, "engineering", 5),
    )
    .await;
    let mut client = rec(&app).await;
    let req = |rid: &str, target: &str| v1::RequestRecognitionRequest {
        request_id: rid.into(),
        credential_id: cred.id.clone(),
        target_city: target.into(),
        facts: None,
    };
    // A Hefei recognizer cannot decide into Hangzhou.
    let err = client
        .request_recognition(authed(req("a", "hangzhou"), &recognizer(&app, "hefei")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A verifier or an issuer cannot record recognitions.
    let err = client
        .request_recognition(authed(req("b", "hangzhou"), &app.verifier()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .request_recognition(authed(req("c", "hangzhou"), &app.issuer("hangzhou")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A city cannot publish another city's policy.
    let err = pol(&app)
        .await
        .publish_policy(authed(
            v1::PublishPolicyRequest {
                request_id: "p".into(),
                city: "hangzhou".into(),
                source: TIGHTER_HANGZHOU.into(),
                effective_from: None,
            },
            &policy_admin(&app, "hefei"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The right recognizer can; a retry returns the same recognition.
    let hz = recognizer(&app, "hangzhou");
    let a = client
        .request_recognition(authed(req("ok", "hangzhou"), &hz))
        .await
        .unwrap()
        .into_inner();
    let b = client
        .request_recognition(authed(req("ok", "hangzhou"), &hz))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    let id = a.recognition.unwrap().id;
    // Hefei's recognizer may not read Hangzhou's decision, nor re-decide it.
    let err = client
        .get_recognition(authed(
            v1::GetRecognitionRequest { id: id.clone() },
            &recognizer(&app, "hefei"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .update_recognition_facts(authed(
            v1::UpdateRecognitionFactsRequest {
                request_id: "u".into(),
                id: id.clone(),
                facts: None,
            },
            &recognizer(&app, "hefei"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // The source city's issuer may read it.
    assert!(
        client
            .get_recognition(authed(
                v1::GetRecognitionRequest { id: id.clone() },
                &app.issuer("songjiang")
            ))
            .await
            .is_ok()
    );

    // Listing: Hangzhou sees its own; filters and pages work.
    for (i, t) in ["huzhou", "hangzhou"].iter().enumerate() {
        let tok = recognizer(&app, t);
        client
            .request_recognition(authed(req(&format!("more-{i}"), t), &tok))
            .await
            .unwrap();
    }
    let page = client
        .list_recognitions(authed(
            v1::ListRecognitionsRequest {
                page_size: 1,
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.recognitions.len(), 1);
    assert!(!page.next_page_token.is_empty());
    let page2 = client
        .list_recognitions(authed(
            v1::ListRecognitionsRequest {
                page_size: 1,
                page_token: page.next_page_token,
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.recognitions.len(), 1);
    assert!(page2.next_page_token.is_empty());
    assert_ne!(page.recognitions[0].id, page2.recognitions[0].id);
    assert!(
        page.recognitions
            .iter()
            .chain(&page2.recognitions)
            .all(|r| r.target_city == "hangzhou")
    );
    let err = client
        .list_recognitions(authed(
            v1::ListRecognitionsRequest {
                target_city: "huzhou".into(),
                ..Default::default()
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let all = client
        .list_recognitions(authed(
            v1::ListRecognitionsRequest {
                credential_id: cred.id.clone(),
                ..Default::default()
            },
            &app.token("aud", None, &["auditor"]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.recognitions.len(), 3);

    // Bad input.
    let err = client
        .request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: String::new(),
                credential_id: "nope".into(),
                target_city: "hangzhou".into(),
                facts: Some(
                    F {
                        insurance: Some(-1),
                        ..F::default()
                    }
                    .api(),
                ),
            },
            &hz,
        ))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "credential_id",
            "facts.local_social_insurance_months",
            "request_id"
        ]
    );
    let err = client
        .request_recognition(authed(
            v1::RequestRecognitionRequest {
                request_id: "nf".into(),
                credential_id: uuid::Uuid::new_v4().to_string(),
                target_city: "hangzhou".into(),
                facts: None,
            },
            &hz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// Regression (architecture issue, defect 4): PublishPolicy refused a past
/// `effective_from` before looking for an idempotent replay, so a retried
/// publication whose near-future date had since passed got INVALID_ARGUMENT
/// instead of its stored answer.
#[tokio::test]
async fn a_retried_publication_gets_its_answer_after_its_date_passed() {
    let app = TestApp::spawn().await;
    let mut p = pol(&app).await;
    let admin = policy_admin(&app, "hangzhou");
    let req = v1::PublishPolicyRequest {
        request_id: "publish-soon".into(),
        city: "hangzhou".into(),
        source: TIGHTER_HANGZHOU.into(),
        effective_from: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() + 30,
            nanos: 0,
        }),
    };
    let first = p
        .publish_policy(authed(req.clone(), &admin))
        .await
        .unwrap()
        .into_inner();
    // Two minutes later the date is in the past; the client retries.
    app.clock.advance(chrono::Duration::minutes(2));
    let retry = p
        .publish_policy(authed(req.clone(), &admin))
        .await
        .expect("the stored answer, not INVALID_ARGUMENT")
        .into_inner();
    assert_eq!(first, retry);
    assert_eq!(retry.policy.unwrap().version, 2);
    // A new publication with that date is refused, as before.
    let err = p
        .publish_policy(authed(
            v1::PublishPolicyRequest {
                request_id: "publish-late".into(),
                ..req
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["effective_from"]);
}

/// Regression (architecture issue, defect 6): an HR system that got
/// CONDITIONAL had to parse Cedar to learn which fact to collect, and a
/// missing fact looked like any other. The explanation now carries the
/// unmet conditions structured, and leads `rules_not_applied` with the
/// rules about the credential's own category.
#[tokio::test]
async fn unmet_conditions_are_structured_for_machines() {
    let app = TestApp::spawn().await;
    let cred = issue_q(
        &app,
        "hefei",
        "u1",
        q(Cat::ProfessionalTitle, "engineering", 4),
    )
    .await;
    let r = request(
        &app,
        "u-r1",
        &cred.id,
        "songjiang",
        F {
            insurance: Some(3),
            ..F::default()
        },
    )
    .await
    .unwrap();
    let e = r.explanation.unwrap();
    assert_eq!(e.unmet.len(), 1, "{e:?}");
    let u = &e.unmet[0];
    assert_eq!(
        (
            u.fact.as_str(),
            u.comparison.as_str(),
            u.threshold.as_str(),
            u.given.as_deref()
        ),
        ("local_social_insurance_months", ">=", "6", Some("3"))
    );
    assert!(u.condition.contains("local_social_insurance_months >= 6"));
    let cred2 = issue_q(
        &app,
        "hefei",
        "u2",
        q(Cat::ProfessionalTitle, "engineering", 4),
    )
    .await;
    let e = request(&app, "u-r2", &cred2.id, "songjiang", F::default())
        .await
        .unwrap()
        .explanation
        .unwrap();
    assert_eq!(e.unmet[0].given, None, "missing, not zero");
    let first_other = e
        .rules_not_applied
        .iter()
        .position(|r| r.other_category)
        .unwrap_or(e.rules_not_applied.len());
    assert!(first_other > 0, "{:?}", e.rules_not_applied);
    assert!(
        e.rules_not_applied[first_other..]
            .iter()
            .all(|r| r.other_category)
    );
}

/// Regression (architecture issue, defect 7): SimulatePolicy applied one set
/// of facts to every holder, so with none given, a draft that tightens a
/// months threshold reported "0 changed". It now replays each credential's
/// recorded facts and says how many decisions hung on facts not supplied.
#[tokio::test]
async fn simulation_replays_recorded_facts_and_counts_missing_ones() {
    let app = TestApp::spawn().await;
    let recorded = issue_q(
        &app,
        "hefei",
        "s1",
        q(Cat::ProfessionalTitle, "engineering", 4),
    )
    .await;
    let unrecorded = issue_q(
        &app,
        "hefei",
        "s2",
        q(Cat::ProfessionalTitle, "engineering", 4),
    )
    .await;
    let r = request(
        &app,
        "s-r1",
        &recorded.id,
        "songjiang",
        F {
            insurance: Some(8),
            ..F::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, O::Recognized as i32);
    let draft = include_str!("../../policies/songjiang.cedar").replace(
        "local_social_insurance_months >= 6",
        "local_social_insurance_months >= 12",
    );
    let resp = pol(&app)
        .await
        .simulate_policy(authed(
            v1::SimulatePolicyRequest {
                city: "songjiang".into(),
                source: draft,
                ..Default::default()
            },
            &policy_admin(&app, "songjiang"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.credentials_evaluated, 2);
    assert_eq!(resp.decisions_with_recorded_facts, 1);
    // 8 months met 6 and does not meet 12: that decision changes.
    assert_eq!(resp.decisions_changed, 1, "{resp:?}");
    assert_eq!(resp.examples[0].credential_id, recorded.id);
    assert_eq!(
        (resp.examples[0].from, resp.examples[0].to),
        (O::Recognized as i32, O::Conditional as i32)
    );
    // The other holder supplied no months: CONDITIONAL either way, and said so.
    assert_eq!(resp.decisions_missing_facts, 1);
    let _ = unrecorded;
}

/// A simulation reads the recorded facts of each page of credentials with
/// one statement text whatever the page's size: the ids go as one array
/// parameter. A list of placeholders made a text per size, and sqlx
/// prepares and caches every text on every pooled connection.
#[tokio::test]
async fn recorded_facts_are_read_with_one_statement_whatever_the_page_size() {
    use corridor_server::store::recognitions::latest_facts_for;
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn().await;
    let cred = issue_q(
        &app,
        "hefei",
        "p1",
        q(Cat::ProfessionalTitle, "engineering", 4),
    )
    .await;
    let r = request(
        &app,
        "p-r1",
        &cred.id,
        "songjiang",
        F {
            insurance: Some(8),
            ..F::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, O::Recognized as i32);
    let recorded: uuid::Uuid = cred.id.parse().unwrap();
    let songjiang = corridor_domain::city::CityCode::parse("city", "songjiang").unwrap();
    let hangzhou = corridor_domain::city::CityCode::parse("city", "hangzhou").unwrap();

    // One transaction: one connection, whose prepared statements
    // pg_prepared_statements lists.
    let txn = app.db.begin().await.unwrap();
    for n in 1..=6 {
        let mut ids: Vec<uuid::Uuid> = (1..n).map(|_| uuid::Uuid::new_v4()).collect();
        ids.insert(n / 2, recorded);
        let facts = latest_facts_for(&txn, &ids, &songjiang).await.unwrap();
        assert_eq!(facts.len(), 1, "page of {n}: only the recorded credential");
        assert_eq!(facts[&recorded].local_social_insurance_months, Some(8));
        // Another city's recognitions are not this city's facts.
        let none = latest_facts_for(&txn, &ids, &hangzhou).await.unwrap();
        assert!(none.is_empty(), "page of {n}: {none:?}");
    }
    let texts = count_in(
        &txn,
        "SELECT count(*) FROM pg_prepared_statements \
         WHERE statement LIKE '%FROM \"recognitions\"%credential_id%' \
         AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .await;
    assert_eq!(texts, 1, "statements prepared for six page sizes");
    txn.rollback().await.unwrap();
}

/// Recognitions of one credential, many at once, with its revocation in
/// the middle: every recognition ends void, or was decided after the
/// revocation and rejected by the guard rail; none is left standing. And
/// the revocation is not held off by the stream: each task sees it
/// acknowledged while it still recognizes (a recognition locks the
/// credential row `FOR UPDATE`, which Postgres queues in order with the
/// revocation's lock).
#[tokio::test]
async fn no_recognition_outlives_a_revocation_made_while_others_are_decided() {
    let app = TestApp::spawn().await;
    let cred = issue_q(
        &app,
        "hefei",
        "c1",
        q(Cat::ProfessionalTitle, "engineering", 3),
    )
    .await;
    let revoked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let decided = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (app_url, cred_id, revoked, decided) =
            (app.url(), cred.id.clone(), revoked.clone(), decided.clone());
        let token = recognizer(&app, "songjiang");
        tasks.push(tokio::spawn(async move {
            let mut c = RecognitionServiceClient::connect(app_url).await.unwrap();
            let mut ids = Vec::new();
            // Until a few have been decided after the revocation was acknowledged.
            let mut after = 0;
            for i in 0..2000 {
                let was_revoked = revoked.load(std::sync::atomic::Ordering::SeqCst);
                let r = c
                    .request_recognition(authed(
                        v1::RequestRecognitionRequest {
                            request_id: format!("r-{t}-{i}"),
                            credential_id: cred_id.clone(),
                            target_city: "songjiang".into(),
                            facts: Some(F::default().api()),
                        },
                        &token,
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .recognition
                    .unwrap();
                if was_revoked {
                    // Started after the acknowledgement: rejected.
                    assert_eq!(
                        r.explanation.as_ref().unwrap().deciding_rules,
                        ["guard:revoked"]
                    );
                    after += 1;
                    if after == 3 {
                        break;
                    }
                }
                decided.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ids.push(r.id);
            }
            assert_eq!(
                after, 3,
                "task {t}: the revocation was acknowledged only after its stream of recognitions ended"
            );
            ids
        }));
    }
    // Revoked once the stream is under way.
    let waited = std::time::Instant::now();
    while decided.load(std::sync::atomic::Ordering::SeqCst) < 16 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(30),
            "the recognitions did not get going"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app.credentials()
        .await
        .revoke_credential(authed(
            v1::RevokeCredentialRequest {
                request_id: "v".into(),
                id: cred.id.clone(),
                reason: "fraud".into(),
            },
            &app.issuer("hefei"),
        ))
        .await
        .unwrap();
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let auditor = app.token("aud", None, &["auditor"]);
    let mut c = rec(&app).await;
    let mut void = 0;
    for id in &ids {
        let r = c
            .get_recognition(authed(
                v1::GetRecognitionRequest { id: id.clone() },
                &auditor,
            ))
            .await
            .unwrap()
            .into_inner()
            .recognition
            .unwrap();
        if r.status == v1::RecognitionStatus::Void as i32 {
            void += 1;
        } else {
            assert_eq!(
                r.explanation.as_ref().unwrap().deciding_rules,
                ["guard:revoked"],
                "recognition {id} outlived the revocation: {r:?}"
            );
        }
    }
    assert!(void > 0, "no recognition was decided before the revocation");
}

/// A recognition signs with the target city's current key when another
/// replica rotated it after this one last signed for the city: whatever
/// signing key a replica holds must not outlive a rotation elsewhere.
#[tokio::test]
async fn a_recognition_signs_with_a_key_rotated_on_another_replica() {
    let a = TestApp::spawn().await;
    let kid_of = |jwt: &str| {
        jsonwebtoken::decode_header(jwt)
            .expect("a JWS")
            .kid
            .expect("a kid")
    };
    let title = issue_q(
        &a,
        "hefei",
        "rot-t",
        q(Cat::ProfessionalTitle, "engineering", 4),
    )
    .await;
    let first = request(&a, "rot-1", &title.id, "songjiang", F::default())
        .await
        .unwrap();
    let old = kid_of(&first.attestation);
    // Replica A now holds Songjiang's key; a second replica rotates it.
    let b = a.replica().await;
    let new = rotate_key(&a, b.channel().await, "songjiang", "rot-r").await;
    assert_ne!(new, old);
    let second = request(&a, "rot-2", &title.id, "songjiang", F::default())
        .await
        .unwrap();
    assert_eq!(
        kid_of(&second.attestation),
        new,
        "signed with the current key"
    );
    // And again, now with the new key held.
    let third = request(&a, "rot-3", &title.id, "songjiang", F::default())
        .await
        .unwrap();
    assert_eq!(kid_of(&third.attestation), new);
}

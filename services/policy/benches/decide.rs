//! What does a recognition decision cost beyond Cedar's own evaluation?
//!
//! Baseline: `cedar_policy::Authorizer::is_authorized` on Suzhou's default
//! policy with a request and entities built once. Measured against it, in
//! the same run: `Engine::decide`, which also builds the entities and the
//! request from the credential, applies the guard rails and the precedence,
//! and evaluates a CONDITIONAL rule's condition when one decides. Criterion
//! (through `corridor-benchkit`) prints the table with the ratio; `cargo
//! bench -p corridor-policy --bench decide`.

use std::hint::black_box;
use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request, Schema};
use chrono::Utc;
use corridor_domain::qualification::Category;
use corridor_policy::{DEFAULT_POLICIES, Engine, Facts, SCHEMA_SRC, Subject, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let src = DEFAULT_POLICIES
        .iter()
        .find(|(c, _)| *c == "suzhou")
        .map(|(_, s)| *s)
        .ok_or("no suzhou policy")?;
    let engine = Engine::new()?;
    let policy = engine.load(src).map_err(|d| format!("{d:?}"))?;
    let now = Utc::now();
    let subject = Subject::synthetic(
        Category::SkillLevel,
        "electrician",
        5,
        "hefei",
        "Anhui",
        now,
    );
    let target = Target {
        city: "suzhou".into(),
        province: "Jiangsu".into(),
    };
    let facts = Facts::default();

    // The baseline: the same decision as a bare Cedar call, everything prebuilt.
    let (schema, _) = Schema::from_cedarschema_str(SCHEMA_SRC)?;
    let set = PolicySet::from_str(src)?;
    let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dt = serde_json::json!({ "__extn": { "fn": "datetime", "arg": ts } });
    let entities = Entities::from_json_value(
        serde_json::json!([
            { "uid": { "type": "G60::City", "id": "suzhou" }, "attrs": { "code": "suzhou", "province": "Jiangsu" }, "parents": [] },
            { "uid": { "type": "G60::Credential", "id": "c" }, "attrs": {
                "category": "SKILL_LEVEL", "series": "electrician", "level": 5, "title": "",
                "issuer_city": "hefei", "issuer_province": "Anhui", "issue_date": dt, "valid_from": dt,
                "expires": false }, "parents": [] }
        ]),
        Some(&schema),
    )?;
    let action = EntityUid::from_str(r#"G60::Action::"recognize""#)?;
    let context = Context::from_json_value(
        serde_json::json!({ "facts": {}, "decision_time": dt }),
        Some((&schema, &action)),
    )?;
    let request = Request::new(
        EntityUid::from_str(r#"G60::City::"suzhou""#)?,
        action,
        EntityUid::from_str(r#"G60::Credential::"c""#)?,
        context,
        Some(&schema),
    )?;
    let authorizer = Authorizer::new();

    let d = engine.decide(&policy, &subject, &target, &facts, now)?;
    println!(
        "decision: {} level {:?} by {:?}",
        d.outcome, d.mapped_level, d.deciding_rules
    );

    let mut c = corridor_benchkit::Comparison::new("decide");
    c.baseline("Cedar is_authorized (request prebuilt)", || {
        authorizer
            .is_authorized(black_box(&request), &set, &entities)
            .decision()
    });
    c.subject("Engine::decide (builds the request, precedence)", || {
        engine
            .decide(&policy, black_box(&subject), &target, &facts, now)
            .is_ok()
    });
    c.report();
    Ok(())
}

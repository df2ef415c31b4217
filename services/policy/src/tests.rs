//! Engine tests without a database: defaults compile, decisions follow the
//! brief, bad policies are refused with located diagnostics.

use chrono::Utc;
use corridor_domain::credential::Status;
use corridor_domain::qualification::Category;

use super::*;

fn engine() -> Engine {
    Engine::new().unwrap()
}

fn target(city: &str, province: &str) -> Target {
    Target {
        city: city.into(),
        province: province.into(),
    }
}

fn policy(e: &Engine, city: &str) -> CompiledPolicy {
    let src = DEFAULT_POLICIES.iter().find(|(c, _)| *c == city).unwrap().1;
    e.compile(src, None)
        .unwrap_or_else(|d| panic!("{city}: {d:?}"))
}

#[test]
fn every_default_policy_compiles() {
    let e = engine();
    for (city, src) in DEFAULT_POLICIES {
        let p = e
            .compile(src, None)
            .unwrap_or_else(|d| panic!("{city}: {d:#?}"));
        assert!(p.rules().len() >= 6, "{city}");
    }
}

#[test]
fn songjiang_deputy_senior_from_hefei_is_conditional_then_recognized() {
    let e = engine();
    let p = policy(&e, "songjiang");
    let s = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        4,
        "hefei",
        "Anhui",
        Utc::now(),
    );
    let t = target("songjiang", "Shanghai");
    let d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    assert_eq!(d.outcome, Outcome::Conditional);
    assert_eq!(d.mapped_level, Some(4));
    assert_eq!(d.deciding_rules, ["titles-deputy-senior-outside-shanghai"]);
    assert_eq!(d.unmet_conditions.len(), 1);
    assert!(d.unmet_conditions[0].contains(">= 6"));
    let facts = Facts {
        local_social_insurance_months: Some(6),
        ..Facts::default()
    };
    let d = e.decide(&p, &s, &t, &facts, Utc::now()).unwrap();
    assert_eq!(d.outcome, Outcome::Recognized);
    assert_eq!(d.mapped_level, Some(4));
}

#[test]
fn suzhou_downgrades_anhui_skills_unless_experienced() {
    let e = engine();
    let p = policy(&e, "suzhou");
    let s = Subject::synthetic(
        Category::SkillLevel,
        "electrician",
        5,
        "hefei",
        "Anhui",
        Utc::now(),
    );
    let t = target("suzhou", "Jiangsu");
    let d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    assert_eq!((d.outcome, d.mapped_level), (Outcome::Downgraded, Some(4)));
    let facts = Facts {
        years_of_experience: Some(3),
        ..Facts::default()
    };
    let d = e.decide(&p, &s, &t, &facts, Utc::now()).unwrap();
    assert_eq!((d.outcome, d.mapped_level), (Outcome::Recognized, Some(5)));
    assert_eq!(d.deciding_rules, ["skills-anhui-experienced"]);
    // From Zhejiang: same level directly.
    let s = Subject::synthetic(
        Category::SkillLevel,
        "electrician",
        5,
        "hangzhou",
        "Zhejiang",
        Utc::now(),
    );
    let d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    assert_eq!((d.outcome, d.mapped_level), (Outcome::Recognized, Some(5)));
}

#[test]
fn health_is_referred_even_with_a_matching_permit() {
    let e = engine();
    for (city, _) in DEFAULT_POLICIES {
        let p = policy(&e, city);
        let from = if city == "hefei" {
            ("wuhu", "Anhui")
        } else {
            ("hefei", "Anhui")
        };
        let s = Subject::synthetic(
            Category::ProfessionalTitle,
            "health",
            5,
            from.0,
            from.1,
            Utc::now(),
        );
        let d = e
            .decide(&p, &s, &target(city, "X"), &Facts::default(), Utc::now())
            .unwrap();
        assert_eq!(d.outcome, Outcome::Referred, "{city}");
        assert_eq!(d.deciding_rules, ["refer-licensed-professions"]);
        assert!(
            d.matched_rules.contains(&"titles-same-level".to_owned()),
            "{d:?}"
        );
    }
}

#[test]
fn guard_rails_come_first() {
    let e = engine();
    let p = policy(&e, "hangzhou");
    let t = target("hangzhou", "Zhejiang");
    let mut s = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        3,
        "hefei",
        "Anhui",
        Utc::now(),
    );
    s.status = Status::Revoked;
    let d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    assert_eq!(
        (d.outcome, d.guard_rail),
        (Outcome::Rejected, Some(GuardRail::Revoked))
    );
    let s = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        3,
        "hangzhou",
        "Zhejiang",
        Utc::now(),
    );
    let d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    assert_eq!(d.guard_rail, Some(GuardRail::SameCity));
}

fn diags(src: &str) -> Vec<Diagnostic> {
    engine().compile(src, None).err().unwrap_or_default()
}

const HEADER: &str = "// a draft\n";

#[test]
fn a_misspelt_attribute_is_located() {
    let src = format!(
        "{HEADER}@id(\"r1\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource)\nwhen {{ resource.catgory == \"SKILL_LEVEL\" }};\n"
    );
    let d = diags(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].line, 5, "{d:?}");
    assert!(d[0].column > 1);
    assert_eq!(d[0].rule_id.as_deref(), Some("r1"));
    assert!(d[0].message.contains("catgory"), "{}", d[0].message);
}

#[test]
fn a_wrong_type_is_located() {
    let src = format!(
        "{HEADER}@id(\"r1\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource)\nwhen {{ resource.level == \"four\" }};\n"
    );
    let d = diags(&src);
    assert!(!d.is_empty());
    assert_eq!(d[0].line, 5, "{d:?}");
}

#[test]
fn unknown_outcomes_and_bad_annotations_are_refused() {
    let src = format!(
        "{HEADER}@id(\"r1\")\n@outcome(\"ACCEPTED\")\npermit (principal, action, resource);\n\n@id(\"r2\")\n@outcome(\"REFERRED\")\npermit (principal, action, resource);\n@id(\"r3\")\n@outcome(\"CONDITIONAL\")\npermit (principal, action, resource);\n@id(\"r4\")\n@outcome(\"DOWNGRADED\")\n@level_offset(\"2\")\npermit (principal, action, resource);\n@id(\"r5\")\n@outcom(\"RECOGNIZED\")\npermit (principal, action, resource);\n"
    );
    let d = diags(&src);
    let by_rule = |r: &str| d.iter().filter(|x| x.rule_id.as_deref() == Some(r)).count();
    assert_eq!(by_rule("r1"), 1, "{d:#?}");
    assert_eq!(
        d.iter()
            .find(|x| x.rule_id.as_deref() == Some("r1"))
            .unwrap()
            .line,
        3
    );
    assert!(
        by_rule("r2") >= 1 && by_rule("r3") >= 1 && by_rule("r4") >= 1 && by_rule("r5") >= 1,
        "{d:#?}"
    );
    // A condition that misspells a fact is refused too.
    let src = "@id(\"c\")\n@outcome(\"CONDITIONAL\")\n@condition(\"context.facts has years && context.facts.years >= 3\")\npermit (principal, action, resource);\n";
    let d = diags(src);
    assert!(!d.is_empty(), "{d:?}");
    assert!(d.iter().all(|x| x.message.contains("`years`")), "{d:?}");
    assert_eq!(d[0].line, 3);
    // A syntax error has a location too.
    let d = diags(
        "@id(\"s\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource)\nwhen { resource.level >= };\n",
    );
    assert_eq!(d[0].line, 4, "{d:?}");
}

#[test]
fn overlapping_rules_of_equal_priority_are_a_conflict() {
    let src = "@id(\"a\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource) when { resource.category == \"SKILL_LEVEL\" };\n@id(\"b\")\n@outcome(\"DOWNGRADED\")\n@level_offset(\"-1\")\npermit (principal, action, resource) when { resource.issuer_province == \"Anhui\" };\n";
    let d = diags(src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("same @priority"), "{}", d[0].message);
    // With a priority the same rules are fine.
    let fixed = src.replace(
        "@outcome(\"DOWNGRADED\")",
        "@outcome(\"DOWNGRADED\")\n@priority(\"5\")",
    );
    assert!(diags(&fixed).is_empty());
}

#[test]
fn rules_that_did_not_apply_name_their_failing_condition() {
    let e = engine();
    let p = policy(&e, "songjiang");
    let s = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        3,
        "hangzhou",
        "Zhejiang",
        Utc::now(),
    );
    let t = target("songjiang", "Shanghai");
    let mut d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    assert_eq!(d.deciding_rules, ["titles-same-level"]);
    assert!(d.rules_not_applied.is_empty(), "only on request");
    e.explain_not_applied(&p, &mut d, &s, &t, &Facts::default(), Utc::now())
        .unwrap();
    let why = |id: &str| {
        d.rules_not_applied
            .iter()
            .find(|r| r.rule_id == id)
            .map(|r| r.failed_condition.clone())
            .unwrap_or_else(|| panic!("{id} missing from {:?}", d.rules_not_applied))
    };
    assert_eq!(
        why("titles-deputy-senior-outside-shanghai"),
        "resource.level == 4"
    );
    assert_eq!(
        why("skills-same-level"),
        "resource.category == \"SKILL_LEVEL\""
    );
    assert!(
        !d.rules_not_applied
            .iter()
            .any(|r| r.rule_id == "titles-same-level")
    );
    // Every rule is either matched or explained.
    assert_eq!(
        d.rules_not_applied.len() + d.matched_rules.len(),
        p.rules().len()
    );
}

/// Runs `f` on a thread with a 2 MiB stack, the size of tokio's workers and
/// blocking threads: what the server's request paths run on.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

fn rule_with(body: &str) -> String {
    format!(
        "@id(\"deep\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action == G60::Action::\"recognize\", resource)\nwhen {{ {body} }};\n"
    )
}

/// Regression (hardening issue, item 1): each of these aborted the process
/// with a stack overflow inside Cedar. Now each is refused with a located
/// diagnostic, from a 2 MiB thread.
#[test]
fn deeply_nested_policies_are_refused_not_fatal() {
    let e = engine();
    let parens = rule_with(&format!(
        "{}resource.level == 1{}",
        "(".repeat(200),
        ")".repeat(200)
    ));
    let sum = rule_with(&format!(
        "resource.level == {}",
        vec!["1"; 40_000].join(" + ")
    ));
    let lists = rule_with(&format!(
        "[{}1{}].contains(resource.level)",
        "[".repeat(40_000),
        "]".repeat(40_000)
    ));
    let nots = rule_with(&format!("{}true", "!".repeat(40_000)));
    let condition = format!(
        "@id(\"c\")\n@outcome(\"CONDITIONAL\")\n@condition(\"{}true{}\")\npermit (principal, action == G60::Action::\"recognize\", resource);\n",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    for (name, src) in [
        ("parens", parens),
        ("sum", sum),
        ("lists", lists),
        ("nots", nots),
        ("condition", condition),
    ] {
        let d = on_small_stack(|| e.compile(&src, None).err().unwrap_or_default());
        assert_eq!(d.len(), 1, "{name}: {d:?}");
        assert!(
            d[0].message.contains("nest") || d[0].message.contains("operators"),
            "{name}: {d:?}"
        );
    }
}

/// The worst policy inside the budget compiles, and decides on a 2 MiB
/// thread: the budget, not luck, keeps request paths safe.
#[test]
fn the_worst_policy_inside_the_budget_compiles_and_decides_on_a_small_stack() {
    use crate::budget::{MAX_NESTING, MAX_OPERATORS_PER_RULE};
    let e = engine();
    // Deepest nesting (the `when {` brace is one level), then the longest
    // chain of each kind of operator.
    let nested = rule_with(&format!(
        "{}resource.level >= 1{}",
        "(".repeat(MAX_NESTING - 1),
        ")".repeat(MAX_NESTING - 1)
    ));
    // `resource.level >= 0` is 2 operators; `+ 1` adds one.
    let sum = rule_with(&format!(
        "resource.level >= 0{}",
        " + 0".repeat(MAX_OPERATORS_PER_RULE - 2 - 2)
    ));
    // (Cedar itself refuses more than 4 chained unary operators.)
    let ors =
        rule_with(&vec!["resource.level >= 1"; (MAX_OPERATORS_PER_RULE - 2) / 3].join(" || "));
    let ands =
        rule_with(&vec!["resource.level >= 1"; (MAX_OPERATORS_PER_RULE - 2) / 3].join(" && "));
    let ifs = rule_with(&format!(
        "{}true{}",
        "if resource.level >= 1 then ".repeat((MAX_OPERATORS_PER_RULE - 4) / 5),
        " else false".repeat((MAX_OPERATORS_PER_RULE - 4) / 5)
    ));
    let subject = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        4,
        "hefei",
        "Anhui",
        Utc::now(),
    );
    let t = target("songjiang", "Shanghai");
    for (name, src) in [
        ("nested", nested),
        ("sum", sum),
        ("ors", ors),
        ("ands", ands),
        ("ifs", ifs),
    ] {
        crate::budget::check(&src).unwrap_or_else(|d| panic!("{name} over budget: {d}"));
        let p =
            on_small_stack(|| e.compile(&src, None)).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let d = on_small_stack(|| {
            let mut d = e.decide(&p, &subject, &t, &Facts::default(), Utc::now())?;
            e.explain_not_applied(&p, &mut d, &subject, &t, &Facts::default(), Utc::now())?;
            Ok::<_, String>(d)
        })
        .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(d.outcome, Outcome::Recognized, "{name}");
    }
}

/// Regression (architecture issue, defect 5): diagnostics quoted Cedar's
/// internal ids ("for policy `policy1`") instead of the rule's `@id`.
#[test]
fn diagnostics_name_rules_by_their_id_not_cedars() {
    let src = "@id(\"first\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource) when { resource.category == \"SKILL_LEVEL\" };\n@id(\"second\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource) when { resource.level == \"four\" };\n";
    let d = diags(src);
    assert!(!d.is_empty());
    for x in &d {
        assert!(!x.message.contains("`policy"), "{}", x.message);
    }
    assert!(d.iter().any(|x| x.message.contains("`second`")), "{d:?}");
}

/// Regression (architecture issue, defect 5): the conflict example paired a
/// skill level with a title series ("SKILL_LEVEL level 2 series health").
#[test]
fn conflict_examples_are_qualifications_that_can_exist() {
    let src = "@id(\"health-titles\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action, resource) when { resource.series == \"health\" };\n@id(\"anhui\")\n@outcome(\"DOWNGRADED\")\n@level_offset(\"-1\")\npermit (principal, action, resource) when { resource.issuer_province == \"Anhui\" };\n";
    let d = diags(src);
    assert_eq!(d.len(), 1, "{d:?}");
    let m = &d[0].message;
    assert!(
        m.contains("PROFESSIONAL_TITLE") && m.contains("series health"),
        "{m}"
    );
    assert!(m.contains("from Anhui"), "{m}");
    // And no grid point pairs a series with a category it cannot have.
    for c in Category::ALL {
        for s in ["health", "electrician", "physician", "foreign-expert"] {
            let real = c.known_series().contains(&s);
            assert_eq!(c.can_have_series(s), real, "{c} {s}");
        }
        assert!(c.can_have_series("a-new-occupation"));
    }
}

/// Regression (architecture issue, defect 6): an HR system that got
/// CONDITIONAL had to parse Cedar text to learn which fact to collect, and
/// "missing" looked like "3 months". Unmet conditions are now structured.
#[test]
fn unmet_conditions_say_which_fact_and_what_was_given() {
    let e = engine();
    let p = policy(&e, "songjiang");
    let s = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        4,
        "hefei",
        "Anhui",
        Utc::now(),
    );
    let t = target("songjiang", "Shanghai");
    let d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    assert_eq!(d.outcome, Outcome::Conditional);
    assert_eq!(d.unmet.len(), 1, "{:?}", d.unmet);
    let u = &d.unmet[0];
    assert_eq!(u.fact, "local_social_insurance_months");
    assert_eq!(u.comparison, ">=");
    assert_eq!(u.threshold, "6");
    assert_eq!(u.given, None);
    assert!(d.depends_on_missing_facts());
    let three = Facts {
        local_social_insurance_months: Some(3),
        ..Facts::default()
    };
    let d = e.decide(&p, &s, &t, &three, Utc::now()).unwrap();
    assert_eq!(d.unmet[0].given.as_deref(), Some("3"));
    assert!(!d.depends_on_missing_facts());
    // A boolean fact: class B work permits need a registered employer.
    let permit = Subject::synthetic(
        Category::ForeignWorkPermit,
        "foreign-expert",
        2,
        "hefei",
        "Anhui",
        Utc::now(),
    );
    let d = e
        .decide(&p, &permit, &t, &Facts::default(), Utc::now())
        .unwrap();
    assert_eq!(d.unmet[0].fact, "local_employer_registered");
    assert_eq!(
        (
            d.unmet[0].comparison.as_str(),
            d.unmet[0].threshold.as_str()
        ),
        ("==", "true")
    );
}

/// Regression (architecture issue, defect 6): rules about other categories
/// came first in `rules_not_applied`; the ones about this credential's
/// category now do.
#[test]
fn rules_not_applied_lead_with_what_matters() {
    let e = engine();
    let p = policy(&e, "songjiang");
    let s = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        3,
        "hangzhou",
        "Zhejiang",
        Utc::now(),
    );
    let t = target("songjiang", "Shanghai");
    let mut d = e.decide(&p, &s, &t, &Facts::default(), Utc::now()).unwrap();
    e.explain_not_applied(&p, &mut d, &s, &t, &Facts::default(), Utc::now())
        .unwrap();
    let first_other = d
        .rules_not_applied
        .iter()
        .position(|r| r.other_category)
        .unwrap();
    assert!(
        d.rules_not_applied[..first_other]
            .iter()
            .any(|r| r.rule_id == "titles-deputy-senior-outside-shanghai")
    );
    assert!(
        d.rules_not_applied[first_other..]
            .iter()
            .all(|r| r.other_category)
    );
    assert!(
        d.rules_not_applied
            .iter()
            .any(|r| r.rule_id == "skills-same-level" && r.other_category)
    );
}

#[test]
fn one_set_of_inputs_explains_exactly_as_deciding_then_explaining() {
    let e = engine();
    let now = Utc::now();
    let sources = [
        ("hefei", "Anhui"),
        ("hangzhou", "Zhejiang"),
        ("suzhou", "Jiangsu"),
    ];
    let fact_sets = [
        Facts::default(),
        Facts {
            local_social_insurance_months: Some(6),
            years_of_experience: Some(5),
            ..Facts::default()
        },
    ];
    let mut compared = 0;
    for (city, _) in DEFAULT_POLICIES {
        let p = policy(&e, city);
        let t = target(city, "Shanghai");
        for (source, province) in sources {
            for category in [Category::ProfessionalTitle, Category::SkillLevel] {
                for level in 1..=5 {
                    for facts in &fact_sets {
                        let s = Subject::synthetic(
                            category,
                            "engineering",
                            level,
                            source,
                            province,
                            now,
                        );
                        let mut apart = e.decide(&p, &s, &t, facts, now).unwrap();
                        e.explain_not_applied(&p, &mut apart, &s, &t, facts, now)
                            .unwrap();
                        let together = e.decide_explained(Some(&p), &s, &t, facts, now).unwrap();
                        assert_eq!(together, apart, "{city} {source} {category:?} {level}");
                        compared += 1;
                    }
                }
            }
        }
    }
    assert_eq!(compared, DEFAULT_POLICIES.len() * 3 * 2 * 5 * 2);
    // Guard rails decide before any rule, with nothing to explain; no
    // policy in force rejects, with nothing to explain.
    let p = policy(&e, "songjiang");
    let t = target("songjiang", "Shanghai");
    let base = Subject::synthetic(
        Category::ProfessionalTitle,
        "engineering",
        3,
        "hefei",
        "Anhui",
        now,
    );
    let mut revoked = base.clone();
    revoked.status = Status::Revoked;
    let mut suspended = base.clone();
    suspended.status = Status::Suspended;
    let mut expired = base.clone();
    expired.window.from = now - chrono::Duration::days(10);
    expired.window.until = Some(now - chrono::Duration::days(1));
    let mut early = base.clone();
    early.window.from = now + chrono::Duration::days(1);
    let mut same_city = base.clone();
    same_city.issuer_city = "songjiang".into();
    for (s, rail) in [
        (&revoked, GuardRail::Revoked),
        (&suspended, GuardRail::Suspended),
        (&expired, GuardRail::Expired),
        (&early, GuardRail::NotYetValid),
        (&same_city, GuardRail::SameCity),
    ] {
        let mut apart = e.decide(&p, s, &t, &Facts::default(), now).unwrap();
        e.explain_not_applied(&p, &mut apart, s, &t, &Facts::default(), now)
            .unwrap();
        let together = e
            .decide_explained(Some(&p), s, &t, &Facts::default(), now)
            .unwrap();
        assert_eq!(together, apart);
        assert_eq!(together.guard_rail, Some(rail));
        assert!(together.rules_not_applied.is_empty());
    }
    let none = e
        .decide_explained(None, &base, &t, &Facts::default(), now)
        .unwrap();
    assert_eq!(
        none,
        e.decide_in_force(None, &base, &t, &Facts::default(), now)
            .unwrap()
    );
    assert_eq!(none.outcome, Outcome::Rejected);
    assert!(none.rules_not_applied.is_empty() && none.matched_rules.is_empty());
}

#[test]
fn datetimes_are_exact_to_the_second_and_their_table_is_bounded() {
    use chrono::{DateTime, Duration};
    let e = engine();
    // The edge is a literal in the rule, not a bound of the credential's
    // window, so no guard rail decides before Cedar does.
    let rule = |edge: &str| {
        format!(
            "@id(\"before-edge\")\n@outcome(\"RECOGNIZED\")\npermit (principal, action == G60::Action::\"recognize\", resource)\nwhen {{ context.decision_time < datetime(\"{edge}\") }};\n"
        )
    };
    let t = target("songjiang", "Shanghai");
    let subject = |from: DateTime<Utc>| {
        Subject::synthetic(
            Category::ProfessionalTitle,
            "engineering",
            3,
            "hefei",
            "Anhui",
            from,
        )
    };
    let ms = Duration::milliseconds;
    // Mid-minute edges: a table keyed more coarsely than the second would
    // answer one side with the other side's value.
    for edge in ["2030-01-01T00:00:30Z", "1969-12-31T23:59:29Z"] {
        let p = e.compile(&rule(edge), None).unwrap();
        let edge: DateTime<Utc> = edge.parse().unwrap();
        let s = subject(edge - Duration::days(4000));
        let matched = |at| {
            !e.decide(&p, &s, &t, &Facts::default(), at)
                .unwrap()
                .matched_rules
                .is_empty()
        };
        // Each asked twice: the second answer comes from the table.
        for _ in 0..2 {
            // Decision times are whole seconds, truncated (as the token's are).
            assert!(matched(edge - ms(1000)), "{edge} - 1 s");
            assert!(matched(edge - ms(500)), "{edge} - 0.5 s");
            assert!(!matched(edge), "{edge}");
            assert!(!matched(edge + ms(500)), "{edge} + 0.5 s");
            assert!(!matched(edge + ms(1000)), "{edge} + 1 s");
        }
        // Many distinct decision times: the table never holds more than
        // its capacity, and answers stay right after it is emptied.
        for i in 0..(crate::eval::Datetimes::CAPACITY as i64 + 100) {
            assert!(matched(edge - Duration::seconds(i + 1)));
            assert!(e.datetimes.len() <= crate::eval::Datetimes::CAPACITY);
        }
        assert!(matched(edge - ms(500)));
        assert!(!matched(edge + ms(500)));
    }
}

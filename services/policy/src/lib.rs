//! The recognition policy engine. No IO: it compiles a city's policy text,
//! validates it, and decides recognition requests with an explanation.
//!
//! **Why Cedar.** Each city's rules are written in [Cedar](https://www.cedarpolicy.com)
//! (`cedar-policy`), a well-kept policy language with a schema validator: a
//! misspelt attribute or a wrong type is refused with a line and column before
//! a policy is published; `forbid` beats `permit`, which is exactly the brief's
//! hard exclusions; and every decision names the policies that made it.
//!
//! **A rule** is one Cedar policy on the action `G60::Action::"recognize"`,
//! with the principal the receiving city and the resource the source
//! credential (see `schema.cedarschema`), and these annotations:
//!
//! | annotation | required | meaning |
//! |---|---|---|
//! | `@id("...")` | yes | the rule id used in explanations; unique in the policy |
//! | `@outcome("...")` | yes | `permit`: RECOGNIZED, CONDITIONAL or DOWNGRADED; `forbid`: REFERRED or REJECTED |
//! | `@priority("n")` | no (0) | 0..=1000; among matching rules of one effect the highest wins |
//! | `@level_offset("-n")` | DOWNGRADED only | the mapped level is the source level minus n (at least 1) |
//! | `@condition("<expr>")` | CONDITIONAL only | a Cedar expression over `context.facts`; when it holds the rule recognizes, otherwise the decision stays CONDITIONAL with it unmet |
//! | `@reason("...")` | no | human text shown in the explanation |
//!
//! **Precedence**, deterministic and documented in the explanation:
//! 1. guard rails outside any policy ([`GuardRail`]): revoked, suspended, not
//!    yet valid, expired, same city → REJECTED;
//! 2. matching `forbid` rules (exclusions): the highest priority, then the
//!    smallest rule id, decides (REFERRED or REJECTED);
//! 3. matching `permit` rules: the highest priority, then the smallest rule id;
//!    a CONDITIONAL rule whose condition holds gives RECOGNIZED;
//! 4. nothing matches → REJECTED ("no rule recognizes it").
//!
//! Modules, each depending only on those before it: `source` (positions,
//! diagnostics), `types`, `engine` (the schema), `budget`, `compile`, `eval`,
//! `conflicts`, `explanation`, `record` (a recorded recognition), `pipeline`
//! (the public compile and load).
//!
//! Validation refuses, besides schema errors: missing or unknown annotations,
//! outcomes that contradict the effect, CONDITIONAL without a condition,
//! DOWNGRADED without a negative offset, duplicate ids, and two rules of one
//! effect and priority that give different results and can both match some
//! credential (found by evaluating a grid of synthetic credentials and facts).

pub mod budget;
mod compile;
mod conflicts;
mod engine;
mod eval;
mod explanation;
mod pipeline;
mod record;
mod source;
mod types;

pub use compile::{CompiledPolicy, MAX_RULES, Rule};
pub use conflicts::MAX_GRID_SERIES;
pub use engine::{Engine, SCHEMA_SRC};
pub use explanation::Explanation;
pub use pipeline::COMPILE_STACK_BYTES;
pub use record::Recognition;
pub use source::Diagnostic;
pub use types::{
    Comparison, Decision, FactCondition, FactValue, Facts, GuardRail, Outcome, RuleNotApplied,
    Subject, Target, UnmetCondition,
};

/// The default policy of each founding city: `(city code, Cedar source)`,
/// from `policies/<city>.cedar`. Loaded as each city's version 1.
pub const DEFAULT_POLICIES: [(&str, &str); 9] = [
    ("hangzhou", include_str!("../../../policies/hangzhou.cedar")),
    ("hefei", include_str!("../../../policies/hefei.cedar")),
    ("huzhou", include_str!("../../../policies/huzhou.cedar")),
    ("jiaxing", include_str!("../../../policies/jiaxing.cedar")),
    ("jinhua", include_str!("../../../policies/jinhua.cedar")),
    (
        "songjiang",
        include_str!("../../../policies/songjiang.cedar"),
    ),
    ("suzhou", include_str!("../../../policies/suzhou.cedar")),
    ("wuhu", include_str!("../../../policies/wuhu.cedar")),
    (
        "xuancheng",
        include_str!("../../../policies/xuancheng.cedar"),
    ),
];

#[cfg(test)]
mod tests;

//! `corridor policy validate|publish|simulate|get|versions`: PolicyService
//! on a running server (`corridor policy check` is the offline check).

use std::path::PathBuf;

use corridor_proto::v1;
use corridor_proto::v1::policy_service_client::PolicyServiceClient;

use super::args::{
    FactsArgs, parse_time, read_source, show_outcome, show_qualification, show_time,
};
use super::table::{Table, fields};
use super::{ClientArgs, Failure, Session, exit, fresh_request_id};

/// The client subcommands of `corridor policy`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a draft on the server without storing it (ValidatePolicy);
    /// exits 3 when it has diagnostics.
    Validate(Draft),
    /// Publish a new version of the city's policy (PublishPolicy;
    /// `policy_admin` of the city).
    Publish(Publish),
    /// Compare a draft's decisions with the policy in force over the stored
    /// credentials (SimulatePolicy).
    Simulate(Simulate),
    /// Show one version of a city's policy, with its source (GetPolicy).
    Get(Get),
    /// List a city's policy versions, newest first (ListPolicyVersions).
    Versions(Versions),
}

/// `policy validate`.
#[derive(Debug, clap::Args)]
pub struct Draft {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The Cedar file (`-`: standard input).
    pub file: PathBuf,
    /// The city it is for.
    #[arg(long)]
    pub city: String,
}

/// `policy publish`.
#[derive(Debug, clap::Args)]
pub struct Publish {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The Cedar file (`-`: standard input).
    pub file: PathBuf,
    /// The city (the token's).
    #[arg(long)]
    pub city: String,
    /// From when it decides (RFC 3339 or YYYY-MM-DD; not in the past); now
    /// by default.
    #[arg(long, value_parser = parse_time)]
    pub effective_from: Option<prost_types::Timestamp>,
    /// The request id that makes a retry safe; a fresh UUID by default.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `policy simulate`.
#[derive(Debug, clap::Args)]
pub struct Simulate {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The draft's Cedar file (`-`: standard input).
    pub file: PathBuf,
    /// The city whose policy it would replace.
    #[arg(long)]
    pub city: String,
    /// Most credentials to evaluate (the server's default 100,000).
    #[arg(long)]
    pub max_credentials: Option<i32>,
    /// Most examples to show (the server's default 10).
    #[arg(long)]
    pub max_examples: Option<i32>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub facts: FactsArgs,
}

/// `policy get`.
#[derive(Debug, clap::Args)]
pub struct Get {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The city.
    #[arg(long)]
    pub city: String,
    /// A version number; by default the version in force (at `--as-of`).
    #[arg(long)]
    pub version: Option<i32>,
    /// Without `--version`: in force at this time; now by default.
    #[arg(long, value_parser = parse_time, conflicts_with = "version")]
    pub as_of: Option<prost_types::Timestamp>,
}

/// `policy versions`.
#[derive(Debug, clap::Args)]
pub struct Versions {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The city.
    #[arg(long)]
    pub city: String,
    /// Versions per page: 1 to 100 (the server's default 20).
    #[arg(long)]
    pub page_size: Option<i32>,
    /// Continue a listing (the `next page` of an earlier one).
    #[arg(long)]
    pub page_token: Option<String>,
}

/// Runs a client subcommand of `corridor policy`, printing to `out`.
pub async fn run(cmd: Command, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    match cmd {
        Command::Validate(a) => {
            let source = read_source(&a.file)?;
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::ValidatePolicyRequest {
                city: a.city,
                source,
            })?;
            let resp = PolicyServiceClient::new(s.channel.clone())
                .validate_policy(req)
                .await?
                .into_inner();
            let file = a.file.display().to_string();
            s.print(&resp, |r| validation_text(&file, r))?;
            if resp.valid {
                Ok(())
            } else {
                Err(Failure::Exit(exit::REFUSED))
            }
        }
        Command::Publish(a) => {
            let source = read_source(&a.file)?;
            let mut s = Session::open(&a.client, out).await?;
            let request_id = a.request_id.unwrap_or_else(fresh_request_id);
            let req = s.request(v1::PublishPolicyRequest {
                request_id: request_id.clone(),
                city: a.city,
                source,
                effective_from: a.effective_from,
            })?;
            let resp = PolicyServiceClient::new(s.channel.clone())
                .publish_policy(req)
                .await?
                .into_inner();
            s.print(&resp, |r| {
                version_fields(r.policy.as_ref(), Some(&request_id), false)
            })
        }
        Command::Simulate(a) => {
            let source = read_source(&a.file)?;
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::SimulatePolicyRequest {
                city: a.city,
                source,
                max_credentials: a.max_credentials.unwrap_or(0),
                max_examples: a.max_examples.unwrap_or(0),
                facts: a.facts.to_proto(),
            })?;
            let resp = PolicyServiceClient::new(s.channel.clone())
                .simulate_policy(req)
                .await?
                .into_inner();
            s.print(&resp, simulation_text)
        }
        Command::Get(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::GetPolicyRequest {
                city: a.city,
                version: a.version.unwrap_or(0),
                as_of: a.as_of,
            })?;
            let resp = PolicyServiceClient::new(s.channel.clone())
                .get_policy(req)
                .await?
                .into_inner();
            s.print(&resp, |r| version_fields(r.policy.as_ref(), None, true))
        }
        Command::Versions(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::ListPolicyVersionsRequest {
                city: a.city,
                page_size: a.page_size.unwrap_or(0),
                page_token: a.page_token.unwrap_or_default(),
            })?;
            let resp = PolicyServiceClient::new(s.channel.clone())
                .list_policy_versions(req)
                .await?
                .into_inner();
            s.print(&resp, |r| {
                let mut t = Table::new(["VERSION", "EFFECTIVE FROM", "PUBLISHED", "BY", "RULES"]);
                for v in &r.versions {
                    t.row([
                        v.version.to_string(),
                        show_time(v.effective_from.as_ref()),
                        show_time(v.publish_time.as_ref()),
                        v.published_by.clone(),
                        v.rule_ids.len().to_string(),
                    ]);
                }
                let mut text = t.render();
                if !r.next_page_token.is_empty() {
                    text.push_str(&format!("next page: --page-token {}\n", r.next_page_token));
                }
                text
            })
        }
    }
}

/// Like `corridor policy check`: `FILE: valid, N rules`, or one
/// `FILE:LINE:COLUMN: [rule] message` per diagnostic.
fn validation_text(file: &str, r: &v1::ValidatePolicyResponse) -> String {
    if r.valid {
        return format!("{file}: valid, {} rules", r.rule_ids.len());
    }
    let mut text = String::new();
    for d in &r.diagnostics {
        let rule = if d.rule_id.is_empty() {
            String::new()
        } else {
            format!(" [{}]", d.rule_id)
        };
        text.push_str(&format!(
            "{file}:{}:{}:{rule} {}\n",
            d.line, d.column, d.message
        ));
    }
    text.push_str(&format!("{file}: {} problem(s)", r.diagnostics.len()));
    text
}

fn version_fields(p: Option<&v1::PolicyVersion>, request_id: Option<&str>, source: bool) -> String {
    let Some(p) = p else {
        return "(no policy in the answer)".into();
    };
    let mut rows = vec![
        ("city", p.city.clone()),
        ("version", p.version.to_string()),
        ("effective from", show_time(p.effective_from.as_ref())),
        ("published", show_time(p.publish_time.as_ref())),
        ("published by", p.published_by.clone()),
        ("rules", p.rule_ids.join("\n")),
    ];
    if let Some(id) = request_id {
        rows.push(("request id", id.to_owned()));
    }
    let mut text = fields(rows);
    if source {
        text.push('\n');
        text.push_str(&p.source);
    }
    text
}

fn simulation_text(r: &v1::SimulatePolicyResponse) -> String {
    let mut text = fields([
        ("compared with version", r.baseline_version.to_string()),
        ("credentials evaluated", r.credentials_evaluated.to_string()),
        ("decisions changed", r.decisions_changed.to_string()),
        (
            "with recorded facts",
            r.decisions_with_recorded_facts.to_string(),
        ),
        ("missing facts", r.decisions_missing_facts.to_string()),
        (
            "truncated",
            if r.truncated { "yes" } else { "no" }.to_owned(),
        ),
    ]);
    if !r.transitions.is_empty() {
        let mut t = Table::new(["FROM", "TO", "COUNT"]);
        for x in &r.transitions {
            t.row([
                show_outcome(x.from),
                show_outcome(x.to),
                x.count.to_string(),
            ]);
        }
        text.push('\n');
        text.push_str(&t.render());
    }
    if !r.examples.is_empty() {
        let mut t = Table::new([
            "CREDENTIAL",
            "SOURCE",
            "QUALIFICATION",
            "FROM",
            "TO",
            "RULES NOW",
            "RULES DRAFT",
        ]);
        let outcome = |o: i32, level: i32| {
            if level > 0 {
                format!("{} {level}", show_outcome(o))
            } else {
                show_outcome(o)
            }
        };
        for x in &r.examples {
            t.row([
                x.credential_id.clone(),
                x.source_city.clone(),
                show_qualification(x.qualification.as_ref()),
                outcome(x.from, x.from_level),
                outcome(x.to, x.to_level),
                x.from_rules.join(","),
                x.to_rules.join(","),
            ]);
        }
        text.push('\n');
        text.push_str(&t.render());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_name_the_file_line_and_rule() {
        let r = v1::ValidatePolicyResponse {
            valid: false,
            diagnostics: vec![v1::PolicyDiagnostic {
                line: 3,
                column: 7,
                rule_id: "r1".into(),
                message: "unknown attribute".into(),
            }],
            rule_ids: vec![],
        };
        assert_eq!(
            validation_text("p.cedar", &r),
            "p.cedar:3:7: [r1] unknown attribute\np.cedar: 1 problem(s)"
        );
        let ok = v1::ValidatePolicyResponse {
            valid: true,
            diagnostics: vec![],
            rule_ids: vec!["a".into(), "b".into()],
        };
        assert_eq!(validation_text("p.cedar", &ok), "p.cedar: valid, 2 rules");
    }
}

//! `corridor recognition request|get|list|update-facts|matrix`:
//! RecognitionService.

use corridor_proto::v1;
use corridor_proto::v1::recognition_service_client::RecognitionServiceClient;

use super::args::{
    FactsArgs, QualificationArgs, parse_recognition_status, parse_time, show_facts, show_outcome,
    show_qualification, show_recognition_status, show_time,
};
use super::table::{Table, fields};
use super::{ClientArgs, Failure, Session, fresh_request_id};

/// `corridor recognition ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Decide and record whether a credential counts in the token's city
    /// (RequestRecognition; `recognizer` of that city).
    Request(Request),
    /// Show one recognition (GetRecognition).
    Get(Get),
    /// List recognitions, newest first (ListRecognitions).
    List(List),
    /// Add facts to an open CONDITIONAL recognition and decide it again
    /// (UpdateRecognitionFacts).
    UpdateFacts(UpdateFacts),
    /// The outcome for one qualification between every pair of cities
    /// (GetRecognitionMatrix).
    Matrix(Matrix),
}

/// `recognition request`.
#[derive(Debug, clap::Args)]
pub struct Request {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The source credential's id.
    #[arg(long)]
    pub credential: String,
    /// The receiving city (the token's).
    #[arg(long)]
    pub city: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub facts: FactsArgs,
    /// The request id that makes a retry safe; a fresh UUID by default.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `recognition get`.
#[derive(Debug, clap::Args)]
pub struct Get {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The recognition id.
    pub id: String,
}

/// `recognition list`.
#[derive(Debug, clap::Args)]
pub struct List {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// Only into this city (a recognizer: its own, the default).
    #[arg(long)]
    pub city: Option<String>,
    /// Only of this source credential.
    #[arg(long)]
    pub credential: Option<String>,
    /// Only with this status: open, decided, suspended or void.
    #[arg(long, value_parser = parse_recognition_status)]
    pub status: Option<v1::RecognitionStatus>,
    /// Recognitions per page: 1 to 500 (the server's default 50).
    #[arg(long)]
    pub page_size: Option<i32>,
    /// Continue a listing (the `next page` of an earlier one, same filters).
    #[arg(long)]
    pub page_token: Option<String>,
}

/// `recognition update-facts`.
#[derive(Debug, clap::Args)]
pub struct UpdateFacts {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The recognition id.
    pub id: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub facts: FactsArgs,
    /// The request id that makes a retry safe; a fresh UUID by default.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `recognition matrix`.
#[derive(Debug, clap::Args)]
pub struct Matrix {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub qualification: QualificationArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub facts: FactsArgs,
    /// Policies in force at this time (RFC 3339 or YYYY-MM-DD); now by default.
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<prost_types::Timestamp>,
}

/// Runs `corridor recognition ...`, printing to `out`.
pub async fn run(cmd: Command, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    match cmd {
        Command::Request(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let request_id = a.request_id.unwrap_or_else(fresh_request_id);
            let req = s.request(v1::RequestRecognitionRequest {
                request_id: request_id.clone(),
                credential_id: a.credential,
                target_city: a.city,
                facts: a.facts.to_proto(),
            })?;
            let resp = RecognitionServiceClient::new(s.channel.clone())
                .request_recognition(req)
                .await?
                .into_inner();
            s.print(&resp, |r| {
                recognition_fields(r.recognition.as_ref(), Some(&request_id))
            })
        }
        Command::Get(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::GetRecognitionRequest { id: a.id })?;
            let resp = RecognitionServiceClient::new(s.channel.clone())
                .get_recognition(req)
                .await?
                .into_inner();
            s.print(&resp, |r| recognition_fields(r.recognition.as_ref(), None))
        }
        Command::List(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::ListRecognitionsRequest {
                page_size: a.page_size.unwrap_or(0),
                page_token: a.page_token.unwrap_or_default(),
                target_city: a.city.unwrap_or_default(),
                credential_id: a.credential.unwrap_or_default(),
                status: a.status.map_or(0, Into::into),
            })?;
            let resp = RecognitionServiceClient::new(s.channel.clone())
                .list_recognitions(req)
                .await?
                .into_inner();
            s.print(&resp, list_text)
        }
        Command::UpdateFacts(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let request_id = a.request_id.unwrap_or_else(fresh_request_id);
            let req = s.request(v1::UpdateRecognitionFactsRequest {
                request_id: request_id.clone(),
                id: a.id,
                facts: a.facts.to_proto(),
            })?;
            let resp = RecognitionServiceClient::new(s.channel.clone())
                .update_recognition_facts(req)
                .await?
                .into_inner();
            s.print(&resp, |r| {
                recognition_fields(r.recognition.as_ref(), Some(&request_id))
            })
        }
        Command::Matrix(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::GetRecognitionMatrixRequest {
                qualification: Some(a.qualification.to_proto()),
                facts: a.facts.to_proto(),
                as_of: a.as_of,
            })?;
            let resp = RecognitionServiceClient::new(s.channel.clone())
                .get_recognition_matrix(req)
                .await?
                .into_inner();
            s.print(&resp, matrix_text)
        }
    }
}

fn list_text(r: &v1::ListRecognitionsResponse) -> String {
    let mut t = Table::new([
        "ID",
        "CREDENTIAL",
        "SOURCE",
        "TARGET",
        "OUTCOME",
        "LEVEL",
        "STATUS",
        "DECIDED",
    ]);
    for x in &r.recognitions {
        t.row([
            x.id.clone(),
            x.credential_id.clone(),
            x.source_city.clone(),
            x.target_city.clone(),
            show_outcome(x.outcome),
            x.mapped_level.to_string(),
            show_recognition_status(x.status),
            show_time(x.decide_time.as_ref()),
        ]);
    }
    let mut text = t.render();
    if !r.next_page_token.is_empty() {
        text.push_str(&format!("next page: --page-token {}\n", r.next_page_token));
    }
    text
}

/// One recognition for people, with its explanation.
pub fn recognition_fields(r: Option<&v1::Recognition>, request_id: Option<&str>) -> String {
    let Some(r) = r else {
        return "(no recognition in the answer)".into();
    };
    let e = r.explanation.clone().unwrap_or_default();
    let mut rows = vec![
        ("id", r.id.clone()),
        ("credential", r.credential_id.clone()),
        ("from", r.source_city.clone()),
        ("into", r.target_city.clone()),
        (
            "qualification",
            show_qualification(r.qualification.as_ref()),
        ),
        ("outcome", show_outcome(r.outcome)),
        ("mapped level", r.mapped_level.to_string()),
        ("status", show_recognition_status(r.status)),
        ("facts", show_facts(r.facts.as_ref())),
        (
            "policy",
            format!("{} version {}", e.policy_city, e.policy_version),
        ),
        ("deciding rules", e.deciding_rules.join("\n")),
    ];
    if !e.unmet_conditions.is_empty() {
        rows.push(("unmet conditions", e.unmet_conditions.join("\n")));
    }
    if !e.met_conditions.is_empty() {
        rows.push(("met conditions", e.met_conditions.join("\n")));
    }
    rows.extend([
        ("reason", e.reason),
        ("decided", show_time(r.decide_time.as_ref())),
        ("updated", show_time(r.update_time.as_ref())),
        ("decided by", r.decided_by.clone()),
    ]);
    if let Some(id) = request_id {
        rows.push(("request id", id.to_owned()));
    }
    fields(rows)
}

/// The outcome of a matrix cell in a few characters: `RECOGNIZED 4`,
/// `CONDITIONAL 4`, `REJECTED`.
fn cell(c: &v1::RecognitionMatrixCell) -> String {
    if c.mapped_level > 0 {
        format!("{} {}", show_outcome(c.outcome), c.mapped_level)
    } else {
        show_outcome(c.outcome)
    }
}

fn matrix_text(r: &v1::GetRecognitionMatrixResponse) -> String {
    let mut t =
        Table::new(std::iter::once("FROM \\ INTO".to_owned()).chain(r.cities.iter().cloned()));
    for source in &r.cities {
        let mut row = vec![source.clone()];
        for target in &r.cities {
            let found = r
                .cells
                .iter()
                .find(|c| &c.source_city == source && &c.target_city == target);
            row.push(match found {
                Some(_) if source == target => "-".into(),
                Some(c) => cell(c),
                None => String::new(),
            });
        }
        t.row(row);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_is_a_grid_of_outcomes() {
        let cities = vec!["a".to_owned(), "b".to_owned()];
        let mut cells = Vec::new();
        for s in &cities {
            for t in &cities {
                let (outcome, level) = if s == t {
                    (v1::RecognitionOutcome::Rejected, 0)
                } else if s == "a" {
                    (v1::RecognitionOutcome::Recognized, 4)
                } else {
                    (v1::RecognitionOutcome::Conditional, 4)
                };
                cells.push(v1::RecognitionMatrixCell {
                    source_city: s.clone(),
                    target_city: t.clone(),
                    outcome: outcome.into(),
                    mapped_level: level,
                    deciding_rules: vec![],
                    policy_version: 1,
                });
            }
        }
        let text = matrix_text(&v1::GetRecognitionMatrixResponse { cities, cells });
        assert_eq!(
            text,
            "FROM \\ INTO  a              b\n\
             a            -              RECOGNIZED 4\n\
             b            CONDITIONAL 4  -\n"
        );
    }
}

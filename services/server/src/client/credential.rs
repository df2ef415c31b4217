//! `corridor credential issue|get|list|verify|suspend|reinstate|revoke`:
//! CredentialService and VerificationService.

use std::path::PathBuf;

use corridor_proto::v1;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use corridor_proto::v1::verification_service_client::VerificationServiceClient;
use corridor_proto::v1::verify_credential_request::Credential as VerifyWhat;

use super::args::{
    QualificationArgs, parse_category, parse_credential_status, parse_time, show_category,
    show_credential_status, show_outcome, show_qualification, show_time,
};
use super::table::{Table, fields};
use super::{ClientArgs, Failure, Session, exit, fresh_request_id};

/// `corridor credential ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Issue a credential (IssueCredential; `issuer` of the city).
    Issue(Issue),
    /// Show one credential (GetCredential).
    Get(Get),
    /// List credentials, newest first (ListCredentials).
    List(List),
    /// Verify a credential by id or token (VerifyCredential); exits 6 when
    /// it is not valid.
    Verify(Verify),
    /// Suspend an active credential (SuspendCredential).
    Suspend(Change),
    /// Reinstate a suspended credential (ReinstateCredential).
    Reinstate(Change),
    /// Revoke a credential for good (RevokeCredential).
    Revoke(Change),
}

/// `credential issue`.
#[derive(Debug, clap::Args)]
pub struct Issue {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The issuing city (the token's).
    #[arg(long)]
    pub city: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub qualification: QualificationArgs,
    /// The holder's display name.
    #[arg(long)]
    pub holder_name: String,
    /// The holder's 18-character resident identity number (only its keyed
    /// hash is kept).
    #[arg(long)]
    pub holder_national_id: String,
    /// Start of validity (RFC 3339 or YYYY-MM-DD); defaults to now.
    #[arg(long, value_parser = parse_time)]
    pub valid_from: Option<prost_types::Timestamp>,
    /// End of validity; none by default.
    #[arg(long, value_parser = parse_time)]
    pub valid_until: Option<prost_types::Timestamp>,
    /// The request id that makes a retry safe; a fresh UUID by default
    /// (printed: give it again to retry).
    #[arg(long)]
    pub request_id: Option<String>,
}

/// `credential get`.
#[derive(Debug, clap::Args)]
pub struct Get {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The credential id.
    pub id: String,
    /// Also print the signed token (VC-JWT).
    #[arg(long)]
    pub show_token: bool,
}

/// `credential list`.
#[derive(Debug, clap::Args)]
pub struct List {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// Only of this issuing city (an issuer: its own, the default).
    #[arg(long)]
    pub city: Option<String>,
    /// Only with this status: active, suspended or revoked.
    #[arg(long, value_parser = parse_credential_status)]
    pub status: Option<v1::CredentialStatus>,
    /// Only of this category.
    #[arg(long, value_parser = parse_category)]
    pub category: Option<v1::QualificationCategory>,
    /// Only of the holder with this national ID.
    #[arg(long)]
    pub holder_national_id: Option<String>,
    /// Credentials per page: 1 to 500 (the server's default 50).
    #[arg(long)]
    pub page_size: Option<i32>,
    /// Continue a listing (the `next page` of an earlier one, same filters).
    #[arg(long)]
    pub page_token: Option<String>,
}

/// `credential verify`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["id", "vc_jwt", "vc_jwt_file"])))]
pub struct Verify {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The credential id (the stored token is verified).
    pub id: Option<String>,
    /// The credential's token (VC-JWT) as the holder shows it, instead of an id.
    #[arg(long)]
    pub vc_jwt: Option<String>,
    /// A file holding the token (`-`: standard input), instead of an id.
    #[arg(long)]
    pub vc_jwt_file: Option<PathBuf>,
    /// The national ID of the person presenting it: binds the holder check.
    #[arg(long)]
    pub holder_national_id: Option<String>,
    /// Also report whether it is recognized in this city.
    #[arg(long)]
    pub recognition_city: Option<String>,
}

/// `credential suspend|reinstate|revoke`.
#[derive(Debug, clap::Args)]
pub struct Change {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The credential id.
    pub id: String,
    /// Why (1 to 500 characters).
    #[arg(long)]
    pub reason: String,
    /// The request id that makes a retry safe; a fresh UUID by default.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Runs `corridor credential ...`, printing to `out`.
pub async fn run(cmd: Command, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    match cmd {
        Command::Issue(a) => issue(a, out).await,
        Command::Get(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let req = s.request(v1::GetCredentialRequest { id: a.id })?;
            let resp = CredentialServiceClient::new(s.channel.clone())
                .get_credential(req)
                .await?
                .into_inner();
            s.print(&resp, |r| {
                credential_fields(r.credential.as_ref(), None, a.show_token)
            })
        }
        Command::List(a) => list(a, out).await,
        Command::Verify(a) => verify(a, out).await,
        Command::Suspend(a) => change(Kind::Suspend, a, out).await,
        Command::Reinstate(a) => change(Kind::Reinstate, a, out).await,
        Command::Revoke(a) => change(Kind::Revoke, a, out).await,
    }
}

async fn issue(a: Issue, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    let mut s = Session::open(&a.client, out).await?;
    let request_id = a.request_id.unwrap_or_else(fresh_request_id);
    let req = s.request(v1::IssueCredentialRequest {
        request_id: request_id.clone(),
        issuer_city: a.city,
        qualification: Some(a.qualification.to_proto()),
        holder_name: a.holder_name,
        holder_national_id: a.holder_national_id,
        valid_from: a.valid_from,
        valid_until: a.valid_until,
    })?;
    let resp = CredentialServiceClient::new(s.channel.clone())
        .issue_credential(req)
        .await?
        .into_inner();
    s.print(&resp, |r| {
        credential_fields(r.credential.as_ref(), Some(&request_id), false)
    })
}

async fn list(a: List, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    let mut s = Session::open(&a.client, out).await?;
    let req = s.request(v1::ListCredentialsRequest {
        page_size: a.page_size.unwrap_or(0),
        page_token: a.page_token.unwrap_or_default(),
        issuer_city: a.city.unwrap_or_default(),
        status: a.status.map_or(0, Into::into),
        category: a.category.map_or(0, Into::into),
        holder_national_id: a.holder_national_id.unwrap_or_default(),
    })?;
    let resp = CredentialServiceClient::new(s.channel.clone())
        .list_credentials(req)
        .await?
        .into_inner();
    s.print(&resp, |r| {
        let mut t = Table::new([
            "ID", "CITY", "CATEGORY", "SERIES", "LEVEL", "TITLE", "HOLDER", "STATUS", "ISSUED",
        ]);
        for c in &r.credentials {
            let q = c.qualification.clone().unwrap_or_default();
            t.row([
                c.id.clone(),
                c.issuer_city.clone(),
                show_category(q.category),
                q.series,
                q.level.to_string(),
                q.title,
                c.holder_name.clone(),
                show_credential_status(c.status),
                show_time(c.issue_time.as_ref()),
            ]);
        }
        let mut text = t.render();
        if !r.next_page_token.is_empty() {
            text.push_str(&format!("next page: --page-token {}\n", r.next_page_token));
        }
        text
    })
}

async fn verify(a: Verify, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    let what = match (a.id, a.vc_jwt, a.vc_jwt_file) {
        (Some(id), _, _) => VerifyWhat::CredentialId(id),
        (None, Some(jwt), _) => VerifyWhat::Token(jwt),
        (None, None, Some(path)) => {
            VerifyWhat::Token(super::args::read_source(&path)?.trim().to_owned())
        }
        // clap's group requires one of them.
        (None, None, None) => return Err(anyhow::anyhow!("give an id or --vc-jwt").into()),
    };
    let mut s = Session::open(&a.client, out).await?;
    let req = s.request(v1::VerifyCredentialRequest {
        credential: Some(what),
        holder_national_id: a.holder_national_id.unwrap_or_default(),
        recognition_city: a.recognition_city.unwrap_or_default(),
    })?;
    let resp = VerificationServiceClient::new(s.channel.clone())
        .verify_credential(req)
        .await?
        .into_inner();
    s.print(&resp, verification_text)?;
    if resp.valid {
        Ok(())
    } else {
        Err(Failure::Exit(exit::NOT_VALID))
    }
}

fn verification_text(r: &v1::VerifyCredentialResponse) -> String {
    let mut text = format!("valid: {}\n", if r.valid { "yes" } else { "NO" });
    if let Some(c) = &r.claims {
        text.push_str(&fields([
            ("credential", c.credential_id.clone()),
            ("issuer", c.issuer_city.clone()),
            (
                "qualification",
                show_qualification(c.qualification.as_ref()),
            ),
            ("holder", c.holder_name.clone()),
            ("status", show_credential_status(r.status)),
        ]));
    }
    let mut t = Table::new(["CHECK", "OUTCOME", "DETAIL"]);
    for c in &r.checks {
        let check = v1::VerificationCheck::try_from(c.check)
            .map(|k| k.as_str_name().trim_start_matches("VERIFICATION_CHECK_"))
            .unwrap_or("?");
        let outcome = v1::CheckOutcome::try_from(c.outcome)
            .map(|k| k.as_str_name().trim_start_matches("CHECK_OUTCOME_"))
            .unwrap_or("?");
        t.row([check, outcome, c.detail.as_str()]);
    }
    text.push('\n');
    text.push_str(&t.render());
    if let Some(rec) = &r.recognition {
        let e = rec.explanation.clone().unwrap_or_default();
        text.push('\n');
        text.push_str(&fields([
            (
                "recognition in",
                format!(
                    "{} ({})",
                    rec.city,
                    if rec.recorded {
                        format!("recorded {}", rec.recognition_id)
                    } else {
                        "dry run".into()
                    }
                ),
            ),
            ("outcome", show_outcome(rec.outcome)),
            ("mapped level", rec.mapped_level.to_string()),
            ("reason", e.reason),
        ]));
    }
    text
}

#[derive(Clone, Copy)]
enum Kind {
    Suspend,
    Reinstate,
    Revoke,
}

async fn change(
    kind: Kind,
    a: Change,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), Failure> {
    let mut s = Session::open(&a.client, out).await?;
    let request_id = a.request_id.unwrap_or_else(fresh_request_id);
    let mut client = CredentialServiceClient::new(s.channel.clone());
    let (id, reason, rid) = (a.id, a.reason, request_id.clone());
    let human = |c: Option<&v1::Credential>| credential_fields(c, Some(&request_id), false);
    match kind {
        Kind::Suspend => {
            let req = s.request(v1::SuspendCredentialRequest {
                request_id: rid,
                id,
                reason,
            })?;
            let resp = client.suspend_credential(req).await?.into_inner();
            s.print(&resp, |r| human(r.credential.as_ref()))
        }
        Kind::Reinstate => {
            let req = s.request(v1::ReinstateCredentialRequest {
                request_id: rid,
                id,
                reason,
            })?;
            let resp = client.reinstate_credential(req).await?.into_inner();
            s.print(&resp, |r| human(r.credential.as_ref()))
        }
        Kind::Revoke => {
            let req = s.request(v1::RevokeCredentialRequest {
                request_id: rid,
                id,
                reason,
            })?;
            let resp = client.revoke_credential(req).await?.into_inner();
            s.print(&resp, |r| human(r.credential.as_ref()))
        }
    }
}

/// One credential for people; with the request id of the call that made
/// it, to retry with.
pub fn credential_fields(
    c: Option<&v1::Credential>,
    request_id: Option<&str>,
    token: bool,
) -> String {
    let Some(c) = c else {
        return "(no credential in the answer)".into();
    };
    let mut rows = vec![
        ("id", c.id.clone()),
        ("issuer", c.issuer_city.clone()),
        (
            "qualification",
            show_qualification(c.qualification.as_ref()),
        ),
        ("holder", c.holder_name.clone()),
        ("status", show_credential_status(c.status)),
    ];
    if !c.status_reason.is_empty() {
        rows.push(("reason", c.status_reason.clone()));
    }
    rows.extend([
        ("valid from", show_time(c.valid_from.as_ref())),
        (
            "valid until",
            c.valid_until
                .as_ref()
                .map_or_else(|| "(no expiry)".into(), |t| show_time(Some(t))),
        ),
        ("issued", show_time(c.issue_time.as_ref())),
        ("updated", show_time(c.update_time.as_ref())),
        ("issued by", c.issued_by.clone()),
        ("key", c.kid.clone()),
    ]);
    if token {
        rows.push(("token", c.token.clone()));
    }
    if let Some(r) = request_id {
        rows.push(("request id", r.to_owned()));
    }
    fields(rows)
}

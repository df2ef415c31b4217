//! `corridor events watch`: the change stream (AuditService.WatchEvents),
//! one line per event as it happens.

use corridor_proto::v1;
use corridor_proto::v1::audit_service_client::AuditServiceClient;
use corridor_proto::v1::watch_events_response::Message;

use super::args::show_time;
use super::{ClientArgs, Failure, Session};

/// `corridor events ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print changes as they happen (WatchEvents), one per line; with
    /// `--json` one AuditEvent object per line. Runs until interrupted, the
    /// server ends the stream, or `--limit` events.
    Watch(Watch),
}

/// `events watch`.
#[derive(Debug, clap::Args)]
pub struct Watch {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// Start after this sequence number (0: from the oldest kept); resume
    /// with the last one printed.
    #[arg(long, default_value_t = 0)]
    pub after_sequence: i64,
    /// Only events that concern this city.
    #[arg(long)]
    pub city: Option<String>,
    /// Only this action, e.g. `credential.revoked` (repeat for several).
    #[arg(long = "action")]
    pub actions: Vec<String>,
    /// Only this subject id.
    #[arg(long)]
    pub subject_id: Option<String>,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
}

/// Columns of the human output, fixed because a stream cannot measure.
fn header() -> String {
    format!(
        "{:>8}  {:<20}  {:<22}  {:<12}  {:<36}  {:<20}  {}",
        "SEQ", "TIME", "ACTION", "SUBJECT", "ID", "CITY", "ACTOR"
    )
}

fn line(e: &v1::AuditEvent) -> String {
    let city = if e.other_city.is_empty() {
        e.city.clone()
    } else {
        format!("{}<-{}", e.city, e.other_city)
    };
    format!(
        "{:>8}  {:<20}  {:<22}  {:<12}  {:<36}  {:<20}  {}",
        e.sequence,
        show_time(e.occur_time.as_ref()),
        e.action,
        e.subject_type,
        e.subject_id,
        city,
        e.actor
    )
}

/// Runs `corridor events ...`, printing to `out`.
pub async fn run(cmd: Command, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    let Command::Watch(a) = cmd;
    if a.limit == Some(0) {
        return Ok(());
    }
    let mut s = Session::open(&a.client, out).await?;
    let req = s.request(v1::WatchEventsRequest {
        after_sequence: a.after_sequence,
        city: a.city.unwrap_or_default(),
        actions: a.actions,
        subject_id: a.subject_id.unwrap_or_default(),
    })?;
    let mut stream = AuditServiceClient::new(s.channel.clone())
        .watch_events(req)
        .await?
        .into_inner();
    s.say(&header())?;
    let mut seen = 0u64;
    while let Some(msg) = stream.message().await? {
        // Keep-alives only say the stream is alive.
        let Some(Message::Event(e)) = msg.message else {
            continue;
        };
        s.print_line(&e, line)?;
        seen += 1;
        if a.limit.is_some_and(|n| seen >= n) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_under_the_header() {
        let e = v1::AuditEvent {
            sequence: 7,
            occur_time: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            actor: "songjiang-talent-office".into(),
            action: "recognition.decided".into(),
            subject_type: "recognition".into(),
            subject_id: "r-1".into(),
            city: "songjiang".into(),
            other_city: "hangzhou".into(),
            ..Default::default()
        };
        let l = line(&e);
        assert!(!l.contains('\n'));
        assert!(l.starts_with("       7  2026-01-01T00:00:00Z  recognition.decided"));
        assert!(l.contains("  r-1  "), "{l}");
        assert!(l.contains("  songjiang<-hangzhou  "), "{l}");
        assert!(l.ends_with("  songjiang-talent-office"), "{l}");
        // The columns line up with the header's.
        let h = header();
        assert_eq!(h.find("ACTION"), l.find("recognition.decided"));
        assert_eq!(h.find("ACTOR"), l.find("songjiang-talent-office"));
    }
}

//! `AuditService`: the audit trail, its checkpoints and chain check, and the
//! change stream.

use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corridor_domain::audit::{ChainedEvent, Checkpoint};
use corridor_domain::authz::Rpc;
use corridor_domain::city::CityCode;
use corridor_domain::error::AllOk;
use corridor_proto::v1;
use corridor_proto::v1::audit_service_server::AuditService;
use futures::Stream;
use tonic::{Request, Response, Status};

use super::authenticate;
use super::convert::{optional, ts};
use crate::app::audit::{ListAudit, Watch, WatchItem};
use crate::error::AppResult;
use crate::paging::page_size;
use crate::state::AppState;

/// The handler.
#[derive(Debug, Clone)]
pub struct Audit {
    state: AppState,
}

impl Audit {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// An audit event as the API shows it.
pub fn event_to_api(e: &ChainedEvent) -> v1::AuditEvent {
    v1::AuditEvent {
        sequence: e.position,
        occur_time: Some(ts(e.occurred_at)),
        actor: e.actor.clone(),
        actor_city: e.actor_city.clone().unwrap_or_default(),
        action: e.action.clone(),
        subject_type: e.subject_type.clone(),
        subject_id: e.subject_id.clone(),
        detail_json: e.detail.clone(),
        city: e.city.clone().unwrap_or_default(),
        other_city: e.other_city.clone().unwrap_or_default(),
        hash: hex::encode(e.hash),
        city_hash: e.city_hash.map(hex::encode).unwrap_or_default(),
    }
}

fn checkpoint_to_api(c: &Checkpoint) -> v1::AuditCheckpoint {
    v1::AuditCheckpoint {
        sequence: c.position,
        head: hex::encode(c.head),
        sign_time: Some(ts(c.signed_at)),
        kid: c.kid.clone(),
        signature: URL_SAFE_NO_PAD.encode(&c.signature),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn list_command(r: &v1::ListAuditEventsRequest) -> AppResult<ListAudit> {
    let (page_size, city) = (
        page_size(r.page_size, 100, 1000),
        optional(&r.city, |c| CityCode::parse("city", c)),
    )
        .all_ok()?;
    if r.after_sequence < 0 {
        return Err(
            corridor_domain::Violations::one("after_sequence", "must not be negative").into(),
        );
    }
    Ok(ListAudit {
        city,
        action: non_empty(&r.action),
        subject_id: non_empty(&r.subject_id),
        after: r.after_sequence,
        page_size,
        page_token: r.page_token.clone(),
    })
}

fn watch_command(r: &v1::WatchEventsRequest) -> AppResult<Watch> {
    let city = optional(&r.city, |c| CityCode::parse("city", c))?;
    Ok(Watch {
        after: r.after_sequence,
        city,
        actions: r.actions.clone(),
        subject_id: non_empty(&r.subject_id),
    })
}

/// The stream WatchEvents answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_audit_events(
        &self,
        req: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ReadAudit)?;
        let cmd = list_command(req.get_ref())?;
        let page = self.state.list_audit_events(&caller, cmd).await?;
        Ok(Response::new(v1::ListAuditEventsResponse {
            events: page.items.iter().map(event_to_api).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_checkpoint(
        &self,
        req: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::GetCheckpointResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ReadAudit)?;
        let v = self
            .state
            .get_checkpoint(&caller, req.get_ref().sequence)
            .await?;
        Ok(Response::new(v1::GetCheckpointResponse {
            checkpoint: v.checkpoint.as_ref().map(checkpoint_to_api),
            kid: v.kid,
            x: URL_SAFE_NO_PAD.encode(v.public_key),
            head_sequence: v.head_position,
        }))
    }

    async fn verify_audit_chain(
        &self,
        req: Request<v1::VerifyAuditChainRequest>,
    ) -> Result<Response<v1::VerifyAuditChainResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ReadAudit)?;
        let r = req.get_ref();
        let report = self
            .state
            .verify_audit_chain(&caller, r.from_sequence, r.to_sequence)
            .await?;
        Ok(Response::new(v1::VerifyAuditChainResponse {
            intact: report.broken.is_none(),
            verified_through: report.verified_through,
            broken_sequence: report.broken.as_ref().map_or(0, |b| b.position),
            reason: report.broken.map(|b| b.reason).unwrap_or_default(),
            checkpoints_checked: report.checkpoints_checked,
        }))
    }

    type WatchEventsStream = WatchStream;

    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        // The stream outlives this call: it holds no request slot (the
        // watcher limits bound it instead), and it ends when the caller's
        // token expires.
        let (caller, valid_until) =
            super::authenticate_stream(&self.state, &req, Rpc::WatchEvents)?;
        let cmd = watch_command(req.get_ref())?;
        let rx = self.state.watch_events(&caller, cmd, valid_until).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx.0);
        let ticket = rx.1;
        let out = futures::StreamExt::map(stream, move |item| {
            let _held = &ticket;
            match item {
                Ok(WatchItem::Event(e)) => Ok(v1::WatchEventsResponse {
                    message: Some(v1::watch_events_response::Message::Event(event_to_api(&e))),
                }),
                Ok(WatchItem::KeepAlive { head, at }) => Ok(v1::WatchEventsResponse {
                    message: Some(v1::watch_events_response::Message::KeepAlive(
                        v1::KeepAlive {
                            head_sequence: head,
                            send_time: Some(ts(at)),
                        },
                    )),
                }),
                Err(e) => Err(Status::from(e)),
            }
        });
        Ok(Response::new(Box::pin(out)))
    }
}

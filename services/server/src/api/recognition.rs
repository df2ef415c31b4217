//! `RecognitionService`: deciding, recording and re-deciding recognitions.

use corridor_domain::RequestId;
use corridor_domain::authz::Rpc;
use corridor_domain::city::CityCode;
use corridor_domain::error::AllOk;
use corridor_proto::v1;
use corridor_proto::v1::recognition_service_server::RecognitionService;
use tonic::{Request, Response, Status};

use super::authenticate;
use super::convert::{
    explanation_to_api, facts_from_api, from_ts, optional, outcome_to_api, parse_id,
    qualification_from_api, recognition_status_filter, recognition_to_api,
};
use crate::app::recognition::{
    EvaluateRecognition, ListRecognitions, MatrixQuery, RecognitionView, RequestRecognition,
    UpdateFacts, recognition_page_size,
};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The handler.
#[derive(Debug, Clone)]
pub struct Recognitions {
    state: AppState,
}

impl Recognitions {
    /// A handler over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn view_to_api(v: &RecognitionView) -> v1::Recognition {
    recognition_to_api(&v.recognition, v.qualification.as_ref())
}

fn request_command(r: &v1::RequestRecognitionRequest) -> AppResult<RequestRecognition> {
    let (request_id, credential_id, target_city, facts) = (
        RequestId::parse(&r.request_id),
        parse_id("credential_id", &r.credential_id),
        CityCode::parse("target_city", &r.target_city),
        facts_from_api(r.facts.as_ref()),
    )
        .all_ok()?;
    Ok(RequestRecognition {
        request_id,
        credential_id,
        target_city,
        facts,
    })
}

fn evaluate_command(r: &v1::EvaluateRecognitionRequest) -> AppResult<EvaluateRecognition> {
    let (credential_id, target_city, facts, as_of) = (
        parse_id("credential_id", &r.credential_id),
        CityCode::parse("target_city", &r.target_city),
        facts_from_api(r.facts.as_ref()),
        from_ts("as_of", r.as_of.as_ref()),
    )
        .all_ok()?;
    Ok(EvaluateRecognition {
        credential_id,
        target_city,
        facts,
        as_of,
    })
}

fn list_command(r: &v1::ListRecognitionsRequest) -> AppResult<ListRecognitions> {
    let (page_size, target_city, credential_id, status) = (
        recognition_page_size(r.page_size),
        optional(&r.target_city, |c| CityCode::parse("target_city", c)),
        optional(&r.credential_id, |id| parse_id("credential_id", id)),
        recognition_status_filter(r.status),
    )
        .all_ok()?;
    Ok(ListRecognitions {
        target_city,
        credential_id,
        status,
        page_size,
        page_token: r.page_token.clone(),
    })
}

fn update_command(r: &v1::UpdateRecognitionFactsRequest) -> AppResult<UpdateFacts> {
    let (request_id, id, facts) = (
        RequestId::parse(&r.request_id),
        parse_id("id", &r.id),
        facts_from_api(r.facts.as_ref()),
    )
        .all_ok()?;
    Ok(UpdateFacts {
        request_id,
        id,
        facts,
    })
}

fn matrix_query(r: &v1::GetRecognitionMatrixRequest) -> AppResult<MatrixQuery> {
    let (qualification, facts, as_of) = (
        qualification_from_api("qualification", r.qualification.as_ref()),
        facts_from_api(r.facts.as_ref()),
        from_ts("as_of", r.as_of.as_ref()),
    )
        .all_ok()?;
    Ok(MatrixQuery {
        qualification,
        facts,
        as_of,
    })
}

#[tonic::async_trait]
impl RecognitionService for Recognitions {
    async fn request_recognition(
        &self,
        req: Request<v1::RequestRecognitionRequest>,
    ) -> Result<Response<v1::RequestRecognitionResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::DecideRecognition)?;
        let cmd = request_command(req.get_ref())?;
        let v = self.state.request_recognition(&caller, cmd).await?;
        Ok(Response::new(v1::RequestRecognitionResponse {
            recognition: Some(view_to_api(&v)),
        }))
    }

    async fn evaluate_recognition(
        &self,
        req: Request<v1::EvaluateRecognitionRequest>,
    ) -> Result<Response<v1::EvaluateRecognitionResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::EvaluateRecognition)?;
        let cmd = evaluate_command(req.get_ref())?;
        let e = self.state.evaluate_recognition(&caller, cmd).await?;
        Ok(Response::new(v1::EvaluateRecognitionResponse {
            outcome: outcome_to_api(e.outcome).into(),
            mapped_level: e.mapped_level.map_or(0, i32::from),
            explanation: Some(explanation_to_api(&e.explanation)),
        }))
    }

    async fn get_recognition(
        &self,
        req: Request<v1::GetRecognitionRequest>,
    ) -> Result<Response<v1::GetRecognitionResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::GetRecognition)?;
        let id = parse_id("id", &req.get_ref().id).map_err(AppError::from)?;
        let v = self.state.get_recognition(&caller, id).await?;
        Ok(Response::new(v1::GetRecognitionResponse {
            recognition: Some(view_to_api(&v)),
        }))
    }

    async fn list_recognitions(
        &self,
        req: Request<v1::ListRecognitionsRequest>,
    ) -> Result<Response<v1::ListRecognitionsResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::ListRecognitions)?;
        let cmd = list_command(req.get_ref())?;
        let page = self.state.list_recognitions(&caller, cmd).await?;
        Ok(Response::new(v1::ListRecognitionsResponse {
            recognitions: page
                .items
                .iter()
                .map(|r| recognition_to_api(r, None))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_recognition_facts(
        &self,
        req: Request<v1::UpdateRecognitionFactsRequest>,
    ) -> Result<Response<v1::UpdateRecognitionFactsResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::DecideRecognition)?;
        let cmd = update_command(req.get_ref())?;
        let v = self.state.update_recognition_facts(&caller, cmd).await?;
        Ok(Response::new(v1::UpdateRecognitionFactsResponse {
            recognition: Some(view_to_api(&v)),
        }))
    }

    async fn get_recognition_matrix(
        &self,
        req: Request<v1::GetRecognitionMatrixRequest>,
    ) -> Result<Response<v1::GetRecognitionMatrixResponse>, Status> {
        let caller = authenticate(&self.state, &req, Rpc::GetRecognitionMatrix)?;
        let q = matrix_query(req.get_ref())?;
        let m = self.state.recognition_matrix(&caller, q).await?;
        Ok(Response::new(v1::GetRecognitionMatrixResponse {
            cities: m.cities.iter().map(ToString::to_string).collect(),
            cells: m
                .cells
                .into_iter()
                .map(|c| v1::RecognitionMatrixCell {
                    source_city: c.source.to_string(),
                    target_city: c.target.to_string(),
                    outcome: outcome_to_api(c.decided.decision.outcome).into(),
                    mapped_level: c.decided.decision.mapped_level.map_or(0, i32::from),
                    deciding_rules: c.decided.decision.deciding_rules,
                    policy_version: c.decided.policy_version,
                })
                .collect(),
        }))
    }
}

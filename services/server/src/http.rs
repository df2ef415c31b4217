//! The plain HTTP/1.1 port (`http.listen`): what a browser, curl, a JOSE
//! library or an offline verifier fetches, without a token, with cache
//! headers. Read-only; everything here is public by design (public keys,
//! status bits that say nothing about whose credential an index is).
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/cities/{city}/jwks` | the city's issuer keys as a JWKS (`application/jwk-set+json`), retired keys included with their windows |
//! | `GET /v1/status/{city}/{list}/{purpose}` | a `BitstringStatusListCredential` as a VC-JWT (`application/vc+jwt`); `purpose` is `revocation` or `suspension` |
//! | `GET /v1/status/{city}/{list}/entries/{index}` | one entry's bits as JSON: `{"revoked": false, "suspended": false, ...}` |
//! | `GET /healthz` | `ok` |
//!
//! Errors are JSON `{"error": {"code": "NOT_FOUND", "message": "..."}}`
//! with the matching HTTP status (the gRPC code's name, so clients map both
//! APIs the same way). The gRPC equivalents are
//! `CityRegistryService.GetIssuerKeys` and `GetStatusList`.
//!
//! Limits: each request takes an anonymous admission slot (the gRPC
//! server's, so this port cannot crowd the API out), at most
//! [`MAX_CONNECTIONS`] connections are open (more are closed at once), a
//! request's headers must arrive within [`HEADER_TIMEOUT`], and a
//! connection lives at most [`CONNECTION_LIFETIME`].

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use corridor_domain::city::CityCode;
use corridor_domain::status_list::{LIST_SIZE, Purpose};
use tokio::net::TcpListener;

use crate::error::AppError;
use crate::state::AppState;

/// Connections open at once on this port; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a request's headers may take to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// The router, for [`serve`] and for tests.
pub fn router(state: AppState) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/cities/{city}/jwks", get(jwks))
        .route("/v1/status/{city}/{list}/{purpose}", get(status_list))
        .route(
            "/v1/status/{city}/{list}/entries/{index}",
            get(status_entry),
        )
        .with_state(state)
}

/// Serves [`router`] on `listener` until the task is aborted, within the
/// limits of the module doc.
pub async fn serve(listener: TcpListener, state: AppState) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    tracing::info!(addr = %listener.local_addr()?, "serving JWKS and status lists over HTTP/1.1");
    let router = router(state);
    let open = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = MAX_CONNECTIONS, "HTTP connection refused: too many open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}

/// An error answer: the gRPC code's name and message, as JSON.
struct HttpError(tonic::Status);

impl From<AppError> for HttpError {
    fn from(e: AppError) -> Self {
        Self(e.into())
    }
}

fn not_found(message: impl Into<String>) -> HttpError {
    HttpError(tonic::Status::not_found(message.into()))
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        use tonic::Code;
        let status = match self.0.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::Unavailable | Code::Aborted | Code::ResourceExhausted => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = serde_json::json!({
            "error": { "code": crate::client::code_name(self.0.code()), "message": self.0.message() }
        });
        let mut r = (status, axum::Json(body)).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

fn city(raw: &str) -> Result<CityCode, HttpError> {
    CityCode::parse("city", raw).map_err(|_| not_found(format!("no city {raw:?}")))
}

/// An anonymous admission slot for the request (503 when the server is busy).
fn admit(state: &AppState) -> Result<crate::admission::Ticket, HttpError> {
    Ok(state.admission.admit_anonymous()?)
}

fn cached(mut r: Response, max_age: Duration) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs())) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

async fn jwks(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, HttpError> {
    let _slot = admit(&state)?;
    let city = city(&raw)?;
    let keys = state.issuer_keys(&city).await?;
    let mut r = axum::Json(crate::app::registry::jwks(&keys)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    Ok(cached(r, state.status_lists.max_age()))
}

fn list_and_purpose(list: &str, purpose: &str) -> Result<(u32, Purpose), HttpError> {
    let n = list
        .parse::<u32>()
        .map_err(|_| not_found(format!("no status list {list:?}")))?;
    let p = Purpose::from_name(purpose).ok_or_else(|| {
        not_found(format!(
            "no status purpose {purpose:?} (revocation or suspension)"
        ))
    })?;
    Ok((n, p))
}

async fn status_list(
    State(state): State<AppState>,
    Path((raw_city, list, purpose)): Path<(String, String, String)>,
) -> Result<Response, HttpError> {
    let _slot = admit(&state)?;
    let city = city(&raw_city)?;
    let (list, purpose) = list_and_purpose(&list, &purpose)?;
    let built = state.status_list(&city, list, purpose).await?;
    let max_age = built.remaining(state.status_lists.max_age());
    let mut r = built.jwt.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vc+jwt"),
    );
    Ok(cached(r, max_age))
}

async fn status_entry(
    State(state): State<AppState>,
    Path((raw_city, list, index)): Path<(String, String, String)>,
) -> Result<Response, HttpError> {
    let _slot = admit(&state)?;
    let city = city(&raw_city)?;
    let (list, _) = list_and_purpose(&list, "revocation")?;
    let index = index
        .parse::<u32>()
        .ok()
        .filter(|i| *i < LIST_SIZE)
        .ok_or_else(|| {
            HttpError(tonic::Status::invalid_argument(format!(
                "index must be an integer below {LIST_SIZE}, not {index:?}"
            )))
        })?;
    let revocation = state.status_list(&city, list, Purpose::Revocation).await?;
    let suspension = state.status_list(&city, list, Purpose::Suspension).await?;
    let body = serde_json::json!({
        "city": city.as_str(),
        "list": list,
        "index": index,
        "revoked": revocation.bits.get(index),
        "suspended": suspension.bits.get(index),
    });
    let max_age = revocation
        .remaining(state.status_lists.max_age())
        .min(suspension.remaining(state.status_lists.max_age()));
    Ok(cached(axum::Json(body).into_response(), max_age))
}

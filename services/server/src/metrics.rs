//! Prometheus metrics, served on their own port (`metrics_listen`,
//! `GET /metrics`), through the `metrics` facade and its Prometheus
//! exporter.
//!
//! Series (all prefixed `corridor_`):
//! - `grpc_requests_total{service,method,code}` and
//!   `grpc_request_duration_seconds{service,method}` (histogram), and
//!   `grpc_requests_in_flight{service}`: every RPC, counted by its final
//!   gRPC code (`RpcMetrics`, a tower layer, which also opens the RPC's
//!   tracing span);
//! - `db_pool_connections` and `db_pool_idle_connections`, sampled each
//!   second, and `db_unavailable_total` (requests answered UNAVAILABLE for
//!   want of the database);
//! - `cache_lookups_total{cache,result}` for `caller_token`, `issuer_key`
//!   and `status` (hit or miss);
//! - `verifications_total{valid,failed_check}`: outcomes, by the first
//!   failed check;
//! - `recognitions_total{source,target,outcome}`: recorded decisions by
//!   city pair.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::state::AppState;

/// The process's Prometheus recorder (one per process: tests share it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1) until the server's
/// state is gone, and samples the pool and caches every second.
pub async fn serve(listener: TcpListener, state: AppState) -> anyhow::Result<()> {
    let Some(handle) = handle() else {
        anyhow::bail!("the metrics recorder could not be installed");
    };
    tokio::spawn(sample(std::sync::Arc::downgrade(&state.inner())));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { handle.render() }),
    );
    tracing::info!(addr = %listener.local_addr()?, "serving metrics");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn sample(state: std::sync::Weak<crate::state::Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(s) = state.upgrade() else { return };
        if s.db.get_database_backend() == sea_orm::DbBackend::Postgres {
            let pool = s.db.get_postgres_connection_pool();
            metrics::gauge!("corridor_db_pool_connections").set(f64::from(pool.size()));
            metrics::gauge!("corridor_db_pool_idle_connections").set(pool.num_idle() as f64);
        }
    }
}

/// Counts a cache lookup.
pub fn cache_lookup(cache: &'static str, hit: bool) {
    metrics::counter!("corridor_cache_lookups_total", "cache" => cache, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

/// The tower layer that counts and times every RPC by its final gRPC code.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

fn split_path(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default().to_owned();
    let method = parts.next().unwrap_or_default().to_owned();
    (service, method)
}

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Body,
{
    type Response = http::Response<Counted<ResB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let (service, method) = split_path(req.uri().path());
        let span = tracing::info_span!("rpc", rpc.system = "grpc", rpc.service = %service, rpc.method = %method);
        let started = Instant::now();
        metrics::gauge!("corridor_grpc_requests_in_flight", "service" => service.clone())
            .increment(1.0);
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                let res = fut.await?;
                // A trailers-only answer carries its code in the headers.
                let code = res
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(res.map(|body| Counted {
                    body,
                    rpc: Some(Rpc {
                        service,
                        method,
                        started,
                        code,
                    }),
                }))
            },
            span,
        ))
    }
}

struct Rpc {
    service: String,
    method: String,
    started: Instant,
    code: Option<String>,
}

impl Rpc {
    fn done(self, trailer_code: Option<String>) {
        let code = trailer_code.or(self.code).unwrap_or_else(|| "0".into());
        let name = code
            .parse::<i32>()
            .map(|c| format!("{:?}", tonic::Code::from_i32(c)))
            .unwrap_or(code);
        metrics::counter!("corridor_grpc_requests_total", "service" => self.service.clone(), "method" => self.method.clone(), "code" => name).increment(1);
        metrics::histogram!("corridor_grpc_request_duration_seconds", "service" => self.service.clone(), "method" => self.method)
            .record(self.started.elapsed().as_secs_f64());
        metrics::gauge!("corridor_grpc_requests_in_flight", "service" => self.service)
            .decrement(1.0);
    }
}

/// A response body that records its RPC when its trailers (the final
/// status) go out, or when it is dropped.
pub struct Counted<B> {
    body: B,
    rpc: Option<Rpc>,
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(rpc) = self.rpc.take() {
            rpc.done(None);
        }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(rpc) = self.rpc.take()
        {
            let code = trailers
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            rpc.done(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

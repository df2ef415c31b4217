//! Prometheus metrics, served on their own port (`metrics_listen`,
//! `GET /metrics`), through the `metrics` facade and its Prometheus
//! exporter.
//!
//! Series (all prefixed `corridor_`):
//! - `grpc_requests_total{service,method,code}` and
//!   `grpc_request_duration_seconds{service,method}` (histogram), and
//!   `grpc_requests_in_flight{service}`: every RPC, counted by its final
//!   gRPC code (`RpcMetrics`, a tower layer, which also opens the RPC's
//!   tracing span). Only the RPCs of the served descriptor sets get their
//!   own labels; a request to any other path counts as `unknown`, so no
//!   client can add series;
//! - `db_pool_connections` and `db_pool_idle_connections`, sampled each
//!   second, and `db_unavailable_total` (requests answered UNAVAILABLE for
//!   want of the database);
//! - `cache_lookups_total{cache,result}` for `caller_token`, `issuer_key`
//!   and `status` (hit or miss);
//! - `verifications_total{valid,failed_check}`: outcomes, by the first
//!   failed check;
//! - `recognitions_total{source,target,outcome}`: recorded decisions by
//!   city pair.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame};
use metrics::{Counter, Gauge, Histogram};
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
            let upkeep = handle.clone();
            if let Err(e) = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
            {
                // The recorder is installed either way; each scrape still
                // folds the samples.
                tracing::error!(error = %e, "the metrics upkeep thread did not start: histogram samples are kept until a scrape");
            }
            Some(handle)
        })
        .as_ref()
}

/// How often the recorder folds its histograms' pending samples into
/// their buckets. `build_recorder` starts no upkeep of its own: a sample
/// stayed in memory until the next scrape, and with no scraper (no
/// `metrics_listen`, a Prometheus that stopped, the benchmark) the
/// server's memory grew with every RPC, about 85 KB/s under mixed load
/// (performance issue, M1). A thread, not a task: the recorder outlives
/// any one runtime (tests run many).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

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
        // The routes keep their metric handles for good: the recorder must
        // be in place before the first RPC makes them, or they would stay
        // no-ops (the exporter's memory is bounded by the route table).
        let _ = handle();
        RpcMetrics { inner }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

/// The label values and the metric handles of one RPC. The handles are
/// made on first use, after the recorder is installed (`handle`).
#[derive(Debug)]
struct Route {
    service: String,
    method: String,
    in_flight: OnceLock<Gauge>,
    duration: OnceLock<Histogram>,
    /// By gRPC code, 0 (OK) to 16 (UNAUTHENTICATED).
    codes: [OnceLock<Counter>; 17],
}

impl Route {
    fn new(service: &str, method: &str) -> Self {
        Self {
            service: service.to_owned(),
            method: method.to_owned(),
            in_flight: OnceLock::new(),
            duration: OnceLock::new(),
            codes: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn in_flight(&self) -> &Gauge {
        self.in_flight.get_or_init(|| {
            metrics::gauge!("corridor_grpc_requests_in_flight", "service" => self.service.clone())
        })
    }

    fn done(&self, code: tonic::Code, started: Instant) {
        let counter = self.codes[(code as usize).min(16)].get_or_init(|| {
            metrics::counter!("corridor_grpc_requests_total", "service" => self.service.clone(), "method" => self.method.clone(), "code" => format!("{code:?}"))
        });
        counter.increment(1);
        self.duration
            .get_or_init(|| {
                metrics::histogram!("corridor_grpc_request_duration_seconds", "service" => self.service.clone(), "method" => self.method.clone())
            })
            .record(started.elapsed().as_secs_f64());
        self.in_flight().decrement(1.0);
    }
}

/// Every RPC the server knows, by path (`/package.Service/Method`), read
/// from the descriptor sets of the API, health and reflection. Any other
/// path is counted (and traced) as service and method `unknown`: series
/// are made only for names in this table, so requests to made-up paths
/// cannot grow the exporter's memory.
#[derive(Debug)]
struct Routes {
    by_path: HashMap<String, Route>,
    unknown: Route,
}

impl Routes {
    fn get(&self, path: &str) -> &Route {
        self.by_path.get(path).unwrap_or(&self.unknown)
    }
}

/// The service's RPCs (see [`Routes`]).
fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| {
        use prost::Message;
        let mut by_path = HashMap::new();
        for set in [
            corridor_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                tracing::error!(
                    "a compiled-in descriptor set does not decode: its RPCs are counted as unknown"
                );
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let name = match file.package() {
                        "" => service.name().to_owned(),
                        p => format!("{p}.{}", service.name()),
                    };
                    for m in &service.method {
                        by_path
                            .insert(format!("/{name}/{}", m.name()), Route::new(&name, m.name()));
                    }
                }
            }
        }
        Routes {
            by_path,
            unknown: Route::new("unknown", "unknown"),
        }
    })
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
        let route = routes().get(req.uri().path());
        let span = tracing::info_span!("rpc", rpc.system = "grpc", rpc.service = %route.service, rpc.method = %route.method);
        route.in_flight().increment(1.0);
        // Counted (and out of the in-flight gauge) however it ends: its
        // answer's trailers, or dropped on the way (CANCELLED).
        let mut rpc = Rpc {
            route,
            started: Instant::now(),
            code: None,
        };
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                let res = fut.await?;
                // A trailers-only answer carries its code in the headers.
                rpc.code = res.headers().get("grpc-status").map(code_of);
                Ok(res.map(|body| Counted {
                    body,
                    rpc: Some(rpc),
                }))
            },
            span,
        ))
    }
}

/// The code of a `grpc-status` value (UNKNOWN if it is not one).
fn code_of(v: &http::HeaderValue) -> tonic::Code {
    v.to_str()
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .map_or(tonic::Code::Unknown, tonic::Code::from_i32)
}

/// One RPC, recorded when dropped: with its final code, or CANCELLED when
/// it ended before one was known (the client went away, or the answer
/// was dropped before its trailers).
struct Rpc {
    route: &'static Route,
    started: Instant,
    code: Option<tonic::Code>,
}

impl Drop for Rpc {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        self.route.done(code, self.started);
    }
}

/// A response body that records its RPC when its trailers (the final
/// status) go out, or when it is dropped (see [`Rpc`]).
pub struct Counted<B> {
    body: B,
    rpc: Option<Rpc>,
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
            && let Some(mut rpc) = self.rpc.take()
        {
            // Recorded here, as `rpc` is dropped, with the final code.
            rpc.code = trailers.get("grpc-status").map(code_of).or(rpc.code);
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

#[cfg(test)]
mod tests {
    use super::routes;

    #[test]
    fn every_served_rpc_has_its_own_labels_and_nothing_else_does() {
        for (path, service, method) in [
            (
                "/g60.talent.v1.VerificationService/VerifyCredential",
                "g60.talent.v1.VerificationService",
                "VerifyCredential",
            ),
            (
                "/g60.talent.v1.CredentialService/BatchIssueCredentials",
                "g60.talent.v1.CredentialService",
                "BatchIssueCredentials",
            ),
            (
                "/grpc.health.v1.Health/Check",
                "grpc.health.v1.Health",
                "Check",
            ),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "grpc.reflection.v1.ServerReflection",
                "ServerReflectionInfo",
            ),
            (
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                "grpc.reflection.v1alpha.ServerReflection",
                "ServerReflectionInfo",
            ),
        ] {
            let r = routes().get(path);
            assert_eq!((r.service.as_str(), r.method.as_str()), (service, method));
        }
        // Every service the server registers has its RPCs in the table.
        for name in crate::server::SERVICES.iter().filter(|n| !n.is_empty()) {
            let prefix = format!("/{name}/");
            assert!(
                routes().by_path.keys().any(|p| p.starts_with(&prefix)),
                "{name} has no route"
            );
        }
        for path in [
            "/g60.talent.v1.VerificationService/VerifyCredentialX",
            "/g60.talent.v1.VerificationService",
            "/made.Up/Call",
            "",
            "/",
        ] {
            let r = routes().get(path);
            assert_eq!(
                (r.service.as_str(), r.method.as_str()),
                ("unknown", "unknown"),
                "{path}"
            );
        }
    }
}

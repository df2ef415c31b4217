//! Assembles the gRPC server: the services, health, reflection, limits.
//!
//! [`serve`] takes an already-bound listener, so tests bind port 0 and run
//! the real server in-process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use corridor_proto::v1::audit_service_server::AuditServiceServer;
use corridor_proto::v1::city_registry_service_server::CityRegistryServiceServer;
use corridor_proto::v1::credential_service_server::CredentialServiceServer;
use corridor_proto::v1::policy_service_server::PolicyServiceServer;
use corridor_proto::v1::recognition_service_server::RecognitionServiceServer;
use corridor_proto::v1::verification_service_server::VerificationServiceServer;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::api::audit::Audit;
use crate::api::city_registry::CityRegistry;
use crate::api::credentials::Credentials;
use crate::api::policy::Policies;
use crate::api::recognition::Recognitions;
use crate::api::verification::Verifier;
use crate::config::Limits;
use crate::state::AppState;
use crate::tls::Tls;
use crate::transport::{ConnectionLimits, descriptor_limit, incoming, remap_decode_errors};

/// Serves the API on `listener` until `shutdown` resolves, then drains
/// in-flight requests for at most `limits.shutdown_grace_ms` before it
/// closes what is still open.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(listener, state, limits, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (its files reloaded on change
/// while the server runs).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(corridor_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(corridor_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let max = limits.max_message_bytes;
    let cities = CityRegistryServiceServer::new(CityRegistry::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max * 4);
    let credentials = CredentialServiceServer::new(Credentials::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max * 4);
    let verification = VerificationServiceServer::new(Verifier::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max * 4);

    let policies = PolicyServiceServer::new(Policies::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max * 4);
    let recognitions = RecognitionServiceServer::new(Recognitions::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max * 4);
    let audit = AuditServiceServer::new(Audit::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max * 4);
    // Readiness follows the database: NOT_SERVING while it cannot be
    // reached, SERVING again on its own (gRPC health; a load balancer or
    // Kubernetes stops sending traffic meanwhile).
    // Liveness: the process answers (service "liveness"). Readiness: the
    // database answers and no migration is pending (service "" and each API
    // service).
    health_reporter
        .set_service_status("liveness", tonic_health::ServingStatus::Serving)
        .await;
    let up = ready(&state.db).await;
    set_all(&health_reporter, up).await;
    tokio::spawn(readiness(state.clone(), health_reporter, up));

    let connections = ConnectionLimits {
        max_connections: match limits.max_connections {
            0 => descriptor_limit().map_or(1024, |n| n.saturating_sub(128).max(64)),
            n => n,
        },
        idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        max_connections = connections.max_connections,
        tls = tls.is_some(),
        mutual_tls = tls.as_ref().is_some_and(|t| t.mutual()),
        "serving g60.talent.v1"
    );
    let reloader = tls.as_ref().map(Tls::spawn_reloader);
    // Stops the reloader however this function returns.
    let _reloader = reloader.map(AbortOnDrop);
    // The shutdown signal, seen by the server (to drain) and by the deadline.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let server = Server::builder()
        // Streams of one connection; admission (slots of the whole server)
        // happens after authentication, in the handlers (`admission.rs`).
        .concurrency_limit_per_connection(limits.max_concurrent_streams as usize)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .layer(crate::metrics::RpcMetricsLayer)
        .layer(tower::util::MapResponseLayer::new(remap_decode_errors))
        // The request timeout (DEADLINE_EXCEEDED, not tonic's CANCELLED).
        .layer(crate::transport::DeadlineLayer(Duration::from_millis(
            limits.request_timeout_ms,
        )))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(cities)
        .add_service(credentials)
        .add_service(verification)
        .add_service(policies)
        .add_service(recognitions)
        .add_service(audit)
        .serve_with_incoming_shutdown(incoming(listener, connections, tls), signal);
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    let deadline = async move {
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served?,
        () = deadline => {
            tracing::warn!(grace_ms = limits.shutdown_grace_ms, "shutdown deadline passed: closing the connections still open");
        }
    }
    Ok(())
}

/// Every service this server answers, by its gRPC name, and "" (the server
/// as a whole) for health checks.
pub(crate) const SERVICES: [&str; 7] = [
    "",
    <CityRegistryServiceServer<CityRegistry> as tonic::server::NamedService>::NAME,
    <CredentialServiceServer<Credentials> as tonic::server::NamedService>::NAME,
    <VerificationServiceServer<Verifier> as tonic::server::NamedService>::NAME,
    <PolicyServiceServer<Policies> as tonic::server::NamedService>::NAME,
    <RecognitionServiceServer<Recognitions> as tonic::server::NamedService>::NAME,
    <AuditServiceServer<Audit> as tonic::server::NamedService>::NAME,
];

/// How often readiness checks the database.
pub const READINESS_EVERY: Duration = Duration::from_secs(1);

/// Ready: the database answers within a second and has no pending
/// migration (a replica started with `migrate_on_start = false` waits for
/// the migration job).
async fn ready(db: &sea_orm::DatabaseConnection) -> bool {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;
    // A plain read of the applied versions: sea-orm's own pending check
    // creates its table if missing, and Postgres then logs a notice on
    // every call (three times a second across the probes).
    let check = async {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT version FROM seaql_migrations",
            ))
            .await?;
        let applied: std::collections::HashSet<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "version").ok())
            .collect();
        let all_applied = corridor_migrations::Migrator::migrations()
            .iter()
            .all(|m| applied.contains(m.name()));
        Ok::<bool, sea_orm::DbErr>(all_applied)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), check).await,
        Ok(Ok(true))
    )
}

async fn set_all(reporter: &tonic_health::server::HealthReporter, up: bool) {
    use tonic_health::ServingStatus;
    let status = if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in SERVICES {
        reporter.set_service_status(name, status).await;
    }
}

/// Sets every service SERVING while the database answers a ping within a
/// second, NOT_SERVING otherwise; ends when the server's state is gone.
async fn readiness(
    state: AppState,
    reporter: tonic_health::server::HealthReporter,
    mut last: bool,
) {
    let weak = std::sync::Arc::downgrade(&state.inner());
    drop(state);
    let mut tick = tokio::time::interval(READINESS_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let up = ready(&inner.db).await;
        drop(inner);
        if up != last {
            set_all(&reporter, up).await;
            if up {
                tracing::info!("the database answers and is migrated: ready");
            } else {
                tracing::warn!(
                    "the database does not answer, or migrations are pending: not ready"
                );
            }
            last = up;
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

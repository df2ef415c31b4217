//! Assembles the gRPC server: the services, health, reflection, limits.
//!
//! [`serve`] takes an already-bound listener, so tests bind port 0 and run
//! the real server in-process.

use std::future::Future;
use std::time::Duration;

use corridor_proto::v1::city_registry_service_server::CityRegistryServiceServer;
use corridor_proto::v1::credential_service_server::CredentialServiceServer;
use corridor_proto::v1::policy_service_server::PolicyServiceServer;
use corridor_proto::v1::recognition_service_server::RecognitionServiceServer;
use corridor_proto::v1::verification_service_server::VerificationServiceServer;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::api::city_registry::CityRegistry;
use crate::api::credentials::Credentials;
use crate::api::policy::Policies;
use crate::api::recognition::Recognitions;
use crate::api::verification::Verifier;
use crate::config::Limits;
use crate::state::AppState;
use crate::transport::{incoming, remap_decode_errors};

/// Serves the API on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
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
    health_reporter
        .set_serving::<PolicyServiceServer<Policies>>()
        .await;
    health_reporter
        .set_serving::<RecognitionServiceServer<Recognitions>>()
        .await;
    health_reporter
        .set_serving::<CityRegistryServiceServer<CityRegistry>>()
        .await;
    health_reporter
        .set_serving::<CredentialServiceServer<Credentials>>()
        .await;
    health_reporter
        .set_serving::<VerificationServiceServer<Verifier>>()
        .await;

    tracing::info!(addr = %listener.local_addr()?, "serving g60.talent.v1");
    Server::builder()
        .timeout(Duration::from_millis(limits.request_timeout_ms))
        .concurrency_limit_per_connection(limits.max_concurrent_streams as usize)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent_requests,
        ))
        .layer(tower::util::MapResponseLayer::new(remap_decode_errors))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(cities)
        .add_service(credentials)
        .add_service(verification)
        .add_service(policies)
        .add_service(recognitions)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    Ok(())
}

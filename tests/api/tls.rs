//! TLS on the gRPC listener: mutual TLS binds city tokens to the city's
//! client certificate, and certificates are reloaded when their files
//! change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corridor_proto::v1;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use corridor_proto::v1::verification_service_client::VerificationServiceClient;
use corridor_server::config::TlsSettings;
use corridor_tests::{TestApp, authed};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::support::issue_request;

/// A certificate and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

/// A test CA that signs server and client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    fn server(&self) -> Pem {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A client certificate naming `city` as `urn:g60:city:<city>`.
    fn client(&self, city: &str) -> Pem {
        self.client_naming(&[city])
    }

    /// A client certificate whose SAN URIs name `cities` (none, one, two).
    fn client_naming(&self, cities: &[&str]) -> Pem {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "an HR system");
        for city in cities {
            params.subject_alt_names.push(SanType::URI(
                format!("urn:g60:city:{city}").try_into().expect("URI"),
            ));
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corridor-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write");
    p
}

async fn channel(app: &TestApp, ca: &str, identity: Option<&Pem>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    Endpoint::from_shared(format!("https://127.0.0.1:{}", app.addr.port()))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect_lazy()
}

async fn issue(
    ch: Channel,
    token: &str,
    request_id: &str,
) -> Result<v1::Credential, tonic::Status> {
    CredentialServiceClient::new(ch)
        .issue_credential(authed(
            issue_request(request_id, "hangzhou", "33010619900101123"),
            token,
        ))
        .await
        .map(|r| r.into_inner().credential.expect("credential"))
}

#[tokio::test]
async fn mutual_tls_binds_city_tokens_to_the_citys_certificate() {
    let ca = Ca::new("G60 test CA");
    let rogue = Ca::new("someone else's CA");
    let dir = temp_dir();
    let server = ca.server();
    let settings = TlsSettings {
        cert_file: write(&dir, "tls.crt", &server.cert),
        key_file: write(&dir, "tls.key", &server.key),
        client_ca_file: Some(write(&dir, "ca.crt", &ca.pem)),
        reload_interval_ms: 2000,
    };
    let app = TestApp::spawn_with(|s| s.tls = Some(settings)).await;
    let hangzhou = ca.client("hangzhou");
    let suzhou = ca.client("suzhou");
    let forged = rogue.client("hangzhou");
    let token = app.issuer("hangzhou");

    // The city's system, with the city's certificate: served.
    let cred = issue(
        channel(&app, &ca.pem, Some(&hangzhou)).await,
        &token,
        "tls-1",
    )
    .await
    .expect("a hangzhou token over a hangzhou certificate is served");
    assert_eq!(cred.issuer_city, "hangzhou");

    // The same token without a certificate, or over another city's.
    let bare = issue(channel(&app, &ca.pem, None).await, &token, "tls-2")
        .await
        .expect_err("no client certificate");
    assert_eq!(bare.code(), Code::PermissionDenied, "{bare:?}");
    let other = issue(channel(&app, &ca.pem, Some(&suzhou)).await, &token, "tls-3")
        .await
        .expect_err("another city's certificate");
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");

    // A certificate of the right CA that names no city, or two: no city.
    for cities in [&[][..], &["hangzhou", "suzhou"][..]] {
        let unbound = ca.client_naming(cities);
        let e = issue(
            channel(&app, &ca.pem, Some(&unbound)).await,
            &token,
            "tls-6",
        )
        .await
        .expect_err("a certificate that names no single city");
        assert_eq!(e.code(), Code::PermissionDenied, "{cities:?}: {e:?}");
    }

    // A replay of the served request over a bare connection is refused too:
    // the binding is checked before any stored answer is returned.
    let replay = issue(channel(&app, &ca.pem, None).await, &token, "tls-1")
        .await
        .expect_err("a replay without the certificate");
    assert_eq!(replay.code(), Code::PermissionDenied, "{replay:?}");

    // A certificate from another CA does not get through the handshake.
    let forged_call = issue(channel(&app, &ca.pem, Some(&forged)).await, &token, "tls-4").await;
    let code = forged_call.expect_err("a certificate of another CA").code();
    assert!(
        matches!(code, Code::Unavailable | Code::Unknown | Code::Internal),
        "handshake refusal surfaces as a transport error, got {code:?}"
    );

    // A token that names no city (an employer) needs no certificate.
    let verified = VerificationServiceClient::new(channel(&app, &ca.pem, None).await)
        .verify_credential(authed(
            v1::VerifyCredentialRequest {
                credential: Some(v1::verify_credential_request::Credential::CredentialId(
                    cred.id.clone(),
                )),
                ..Default::default()
            },
            &app.verifier(),
        ))
        .await
        .expect("an employer verifies without a client certificate")
        .into_inner();
    assert!(verified.valid);

    // `corridor import` over mutual TLS: with the city's certificate it
    // issues; without one, the server refuses the batch.
    let csv = format!(
        "issuer_city,category,series,level,title,holder_name,holder_national_id\n\
         hangzhou,PROFESSIONAL_TITLE,engineering,4,高级工程师,张三,{}\n",
        corridor_tests::national_id("33010619900101141")
    );
    let opts = corridor_server::import::ImportOptions {
        server: format!("https://localhost:{}", app.addr.port()),
        token: token.clone(),
        batch: 10,
        progress: false,
        ca_cert: Some(dir.join("ca.crt")),
        client_cert: Some((
            write(&dir, "hangzhou.crt", &hangzhou.cert),
            write(&dir, "hangzhou.key", &hangzhou.key),
        )),
    };
    let report = corridor_server::import::import(csv.as_bytes(), &opts)
        .await
        .expect("import over mutual TLS");
    assert_eq!((report.issued, report.rejected.len()), (1, 0), "{report:?}");
    let refused = corridor_server::import::import(
        csv.as_bytes(),
        &corridor_server::import::ImportOptions {
            client_cert: None,
            ..opts
        },
    )
    .await
    .expect_err("a city token without the city's certificate");
    assert!(
        format!("{refused:#}").contains("PermissionDenied"),
        "{refused:#}"
    );

    // Plain HTTP/2 is not spoken on a TLS listener.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", app.addr.port()))
        .expect("endpoint")
        .connect_lazy();
    assert!(
        issue(plain, &token, "tls-5").await.is_err(),
        "plaintext is refused"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The certificate the server presents to a new connection (DER).
async fn presented(port: u16, ca: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().expect("name"), tcp)
        .await
        .expect("handshake");
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM")
        .to_vec()
}

#[tokio::test]
async fn certificates_are_reloaded_when_their_files_change() {
    let ca = Ca::new("G60 test CA");
    let dir = temp_dir();
    let first = ca.server();
    let settings = TlsSettings {
        cert_file: write(&dir, "tls.crt", &first.cert),
        key_file: write(&dir, "tls.key", &first.key),
        client_ca_file: None,
        reload_interval_ms: 100,
    };

    // A key that is not the certificate's is refused at startup, by name.
    let other = ca.server();
    let mismatched = TlsSettings {
        key_file: write(&dir, "other.key", &other.key),
        ..settings.clone()
    };
    let err = corridor_server::tls::Tls::load(&mismatched).expect_err("mismatched key");
    assert!(
        format!("{err:#}").contains("does not match"),
        "the error says what is wrong: {err:#}"
    );

    let app = TestApp::spawn_with(|s| s.tls = Some(settings.clone())).await;
    let port = app.addr.port();
    assert_eq!(presented(port, &ca.pem).await, der_of(&first.cert));

    // A renewal: new key, new certificate. New connections get it.
    let second = ca.server();
    write(&dir, "tls.key", &second.key);
    write(&dir, "tls.crt", &second.cert);
    let deadline = Instant::now() + Duration::from_secs(10);
    while presented(port, &ca.pem).await != der_of(&second.cert) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken change (a key file cut short) keeps the last good
    // configuration: the server goes on serving the second certificate.
    write(&dir, "tls.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(presented(port, &ca.pem).await, der_of(&second.cert));
    let health =
        tonic_health::pb::health_client::HealthClient::new(channel(&app, &ca.pem, None).await)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health over TLS")
            .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    std::fs::remove_dir_all(&dir).ok();
}

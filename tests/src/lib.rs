//! The integration test kit: starts the real server in-process on port 0
//! against a fresh Postgres database, and hands out real gRPC clients.
//!
//! Databases: the first test to run migrates a *template* database (named
//! after a hash of the migrations' names and sources, built under a Postgres advisory lock
//! so that parallel test processes build it once); every test then gets
//! `CREATE DATABASE corridor_test_<uuid> TEMPLATE <template>`, which is a
//! file copy and takes milliseconds, and drops it when the [`TestApp`] drops.
//!
//! Postgres is found through `DATABASE_URL` (any database on the server; the
//! kit connects to the `postgres` maintenance database for admin work), or
//! `postgres://postgres@127.0.0.1:5432/postgres` by default. The test command
//! in the README starts a server when none is running.

#![allow(missing_docs)]

pub mod proxy;

use std::net::SocketAddr;

use chrono::Utc;
use corridor_domain::caller::IdentityMinter;
use corridor_migrations::Migrator;
use corridor_proto::v1::city_registry_service_client::CityRegistryServiceClient;
use corridor_proto::v1::credential_service_client::CredentialServiceClient;
use corridor_proto::v1::verification_service_client::VerificationServiceClient;
use corridor_server::config::{Settings, dev_identity_minter};
use corridor_server::state::AppState;
use corridor_server::{server, store};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Default server when `DATABASE_URL` is not set.
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A second server on a [`TestApp`]'s database: another replica.
pub struct Replica {
    pub addr: SocketAddr,
    /// Its state, to look at its caches.
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Replica {
    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connection to it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to replica")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A running server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    /// A connection to this test's database, for looking behind the API.
    pub db: DatabaseConnection,
    /// Mints identity tokens the server trusts.
    pub minter: IdentityMinter,
    /// The server's clock: tests move it instead of sleeping.
    pub clock: corridor_server::clock::Clock,
    state: AppState,
    db_name: String,
    admin_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The HTTP/1.1 port (JWKS, status lists).
    pub http_addr: SocketAddr,
    http: Option<tokio::task::JoinHandle<()>>,
}

/// An HTTP answer: status, headers (names lowercase), body.
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl HttpAnswer {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over plain HTTP/1.1 on a fresh connection, as curl would.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect HTTP");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read answer");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user@host:port/dbname → replace what follows the last '/'
    // after the authority.
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

async fn single(url: &str) -> DatabaseConnection {
    let mut o = ConnectOptions::new(url.to_owned());
    o.max_connections(1).sqlx_logging(false);
    Database::connect(o)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to Postgres at {url}: {e}"))
}

fn template_name() -> String {
    // Names and sources of the migrations: a migration edited under the same
    // name still gets a fresh template.
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let h = Sha256::digest(format!(
        "{}|{}",
        names.join(","),
        env!("CORRIDOR_MIGRATIONS_HASH")
    ));
    format!("corridor_tpl_{}", hex::encode(&h[..6]))
}

async fn ensure_template(admin: &DatabaseConnection, admin_url: &str) -> String {
    let tpl = template_name();
    admin
        .execute_unprepared("SELECT pg_advisory_lock(604260)")
        .await
        .expect("advisory lock");
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT 1 FROM pg_database WHERE datname = '{tpl}'"),
        ))
        .await
        .expect("query pg_database")
        .is_some();
    if !exists {
        let build = format!("{tpl}_build");
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {build} WITH (FORCE)"))
            .await
            .expect("drop stale template build");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {build}"))
            .await
            .expect("create template build");
        let db = single(&with_database(admin_url, &build)).await;
        store::migrate(&db).await.expect("migrate template");
        db.close().await.expect("close template");
        admin
            .execute_unprepared(&format!("ALTER DATABASE {build} RENAME TO {tpl}"))
            .await
            .expect("publish template");
    }
    admin
        .execute_unprepared("SELECT pg_advisory_unlock(604260)")
        .await
        .expect("advisory unlock");
    tpl
}

impl TestApp {
    /// Starts a server on a fresh database.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server on a fresh database, adjusting its settings first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_inner(adjust, false).await.0
    }

    /// Starts a server whose database connections go through a [`Proxy`]
    /// the test can cut (the test's own `db` connection goes direct).
    ///
    /// [`Proxy`]: proxy::Proxy
    pub async fn spawn_behind_proxy(adjust: impl FnOnce(&mut Settings)) -> (TestApp, proxy::Proxy) {
        let (app, proxy) = Self::spawn_inner(adjust, true).await;
        (app, proxy.expect("proxy"))
    }

    /// The URL of this test's database, through `via` (host:port) if given.
    pub fn database_url(&self, via: Option<SocketAddr>) -> String {
        let url = with_database(&self.admin_url, &self.db_name);
        match via {
            None => url,
            Some(addr) => replace_host(&url, &addr.to_string()),
        }
    }

    async fn spawn_inner(
        adjust: impl FnOnce(&mut Settings),
        behind_proxy: bool,
    ) -> (TestApp, Option<proxy::Proxy>) {
        let admin_url = with_database(&server_url(), "postgres");
        let admin = single(&admin_url).await;
        let tpl = ensure_template(&admin, &admin_url).await;
        let db_name = format!("corridor_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {db_name} TEMPLATE {tpl}"))
            .await
            .expect("create test database");
        admin.close().await.ok();

        let direct = with_database(&admin_url, &db_name);
        let db = store::connect(&direct, std::time::Duration::from_secs(2))
            .await
            .expect("connect test database");
        let mut the_proxy = None;
        let server_db = if behind_proxy {
            let target = host_port(&direct).expect("host:port of DATABASE_URL");
            let p = proxy::Proxy::start(target).await;
            let url = replace_host(&direct, &p.addr.to_string());
            the_proxy = Some(p);
            store::connect(&url, std::time::Duration::from_secs(2))
                .await
                .expect("connect through the proxy")
        } else {
            db.clone()
        };
        let mut settings = Settings::default().with_dev_defaults();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let http_addr = http_listener.local_addr().expect("HTTP addr");
        settings.http.listen = Some(http_addr);
        adjust(&mut settings);
        let (state, _audit_task) = AppState::from_parts(server_db, &settings)
            .await
            .expect("build state");
        let http_state = state.clone();
        let http = tokio::spawn(async move {
            let _ = corridor_server::http::serve(http_listener, http_state).await;
        });
        let clock = state.clock.clone();
        let kept = state.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let limits = settings.limits;
        let tls = settings
            .tls
            .as_ref()
            .map(|t| corridor_server::tls::Tls::load(t).expect("load TLS settings"));
        let server = tokio::spawn(async move {
            server::serve_with(listener, state, limits, tls, async {
                let _ = rx.await;
            })
            .await
        });
        let (minter, _) = dev_identity_minter(&settings.identity.audience);
        (
            TestApp {
                addr,
                db,
                minter,
                clock,
                state: kept,
                db_name,
                admin_url,
                shutdown: Some(tx),
                server: Some(server),
                http_addr,
                http: Some(http),
            },
            the_proxy,
        )
    }

    /// Starts another server (replica) on this app's database.
    pub async fn replica(&self) -> Replica {
        let db = store::connect(
            &with_database(&self.admin_url, &self.db_name),
            std::time::Duration::from_secs(2),
        )
        .await
        .expect("connect replica");
        let mut settings = Settings::default().with_dev_defaults();
        // Credentials name the same status lists whichever replica issues.
        settings.http.listen = None;
        settings.http.public_url = Some(format!("http://{}", self.http_addr));
        let (state, _audit) = AppState::from_parts(db, &settings)
            .await
            .expect("replica state");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            server::serve(listener, served, settings.limits, async {
                let _ = rx.await;
            })
            .await
        });
        Replica {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    /// The server's state (its caches), for looking behind the API.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to test server")
    }

    pub async fn cities(&self) -> CityRegistryServiceClient<Channel> {
        CityRegistryServiceClient::new(self.channel().await)
    }

    pub async fn credentials(&self) -> CredentialServiceClient<Channel> {
        CredentialServiceClient::new(self.channel().await)
    }

    pub async fn verification(&self) -> VerificationServiceClient<Channel> {
        VerificationServiceClient::new(self.channel().await)
    }

    /// Serves this server's Prometheus metrics (`metrics_listen`) on a
    /// port of its own, the recorder installed first.
    pub async fn metrics(&self) -> Metrics {
        assert!(corridor_server::metrics::handle().is_some());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = self.state().clone();
        tokio::spawn(async move { corridor_server::metrics::serve(listener, state).await });
        Metrics { addr }
    }

    pub async fn raw_channel(&self) -> Channel {
        self.channel().await
    }

    /// A valid identity token.
    pub fn token(&self, sub: &str, city: Option<&str>, roles: &[&str]) -> String {
        self.minter
            .mint(sub, city, roles, Utc::now(), chrono::Duration::minutes(10))
            .expect("mint")
    }

    /// An issuer token of `city`.
    pub fn issuer(&self, city: &str) -> String {
        self.token(&format!("{city}-hr"), Some(city), &["issuer"])
    }

    /// A verifier (employer) token.
    pub fn verifier(&self) -> String {
        self.token("employer-1", None, &["verifier"])
    }

    /// A corridor admin token.
    pub fn admin(&self) -> String {
        self.token("ops", None, &["corridor_admin"])
    }

    /// The first column of the one row `sql` returns, as a number (for
    /// `SELECT count(*) ...` on the test database).
    pub async fn count(&self, sql: &str) -> i64 {
        count_in(&self.db, sql).await
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.http.take() {
            h.abort();
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.http.take() {
            h.abort();
        }
        let admin_url = self.admin_url.clone();
        let db_name = self.db_name.clone();
        // Drop runs inside the test's runtime: do the async cleanup on a
        // thread of its own. WITH (FORCE) ends the server's connections.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let admin = single(&admin_url).await;
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
                        ))
                        .await;
                });
            }
        })
        .join();
    }
}

/// The `host:port` of a postgres URL, resolved.
pub fn host_port(url: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://")?.1;
    let rest = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host = rest.split(['/', '?']).next()?;
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    host.to_socket_addrs().ok()?.next()
}

/// `url` with its `host:port` replaced by `addr`.
pub fn replace_host(url: &str, addr: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (user, rest) = match rest.split_once('@') {
        Some((u, r)) => (format!("{u}@"), r),
        None => (String::new(), rest),
    };
    let tail = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{user}{addr}{tail}")
}

/// The first column of the one row `sql` returns on `conn`, as a number:
/// [`TestApp::count`] on a connection or transaction of the test's own
/// (`SELECT count(*) ...`, Postgres).
pub async fn count_in(conn: &impl sea_orm::ConnectionTrait, sql: &str) -> i64 {
    conn.query_one_raw(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        sql.to_owned(),
    ))
    .await
    .expect("query")
    .expect("a row")
    .try_get_by_index::<i64>(0)
    .expect("a number in the first column")
}

/// Wraps `msg` in a request carrying `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    r
}

/// A valid national ID number made from 17 digits.
pub fn national_id(first17: &str) -> String {
    corridor_domain::holder::NationalId::with_check_digit(first17).expect("17 digits")
}

/// The field paths of a status's `google.rpc.BadRequest`.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// A metrics endpoint under test (see [`TestApp::metrics`]).
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    addr: SocketAddr,
}

impl Metrics {
    /// `GET /metrics`: the whole HTTP answer.
    pub async fn scrape(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut body = String::new();
        s.read_to_string(&mut body).await.expect("read");
        body
    }

    /// Scrapes until `done` holds (an RPC is counted just after its client
    /// has the answer), 2 s at most; the last scrape either way.
    pub async fn scrape_until(&self, done: impl Fn(&str) -> bool) -> String {
        let mut body = self.scrape().await;
        for _ in 0..50 {
            if done(&body) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            body = self.scrape().await;
        }
        body
    }
}

/// The value of the first sample line of `body` that starts with `series`.
pub fn metric_value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
}

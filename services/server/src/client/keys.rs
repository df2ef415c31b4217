//! `corridor keys list|rotate`: the cities' issuer keys (CityRegistryService).

use corridor_proto::v1;
use corridor_proto::v1::city_registry_service_client::CityRegistryServiceClient;

use super::args::show_time;
use super::table::{Table, fields};
use super::{ClientArgs, Failure, Session, fresh_request_id};

/// `corridor keys ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// A city's issuer keys, or every city's (GetIssuerKeys; public). With
    /// `--json`: an object from city code to its GetIssuerKeys answer.
    List(List),
    /// Retire a city's signing key and create a new one (RotateIssuerKey;
    /// `corridor_admin`).
    Rotate(Rotate),
}

/// `keys list`.
#[derive(Debug, clap::Args)]
pub struct List {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// Only this city; every city by default.
    #[arg(long)]
    pub city: Option<String>,
}

/// `keys rotate`.
#[derive(Debug, clap::Args)]
pub struct Rotate {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    /// The city whose key rotates.
    #[arg(long)]
    pub city: String,
    /// The request id that makes a retry safe; a fresh UUID by default.
    #[arg(long)]
    pub request_id: Option<String>,
}

fn status(raw: i32) -> String {
    v1::IssuerKeyStatus::try_from(raw)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ISSUER_KEY_STATUS_")
                .to_owned()
        })
        .unwrap_or_else(|_| raw.to_string())
}

/// Runs `corridor keys ...`, printing to `out`.
pub async fn run(cmd: Command, out: &mut (dyn std::io::Write + Send)) -> Result<(), Failure> {
    match cmd {
        Command::List(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let mut client = CityRegistryServiceClient::new(s.channel.clone());
            let cities = match a.city {
                Some(c) => vec![c],
                None => client
                    .list_cities(s.request(v1::ListCitiesRequest {})?)
                    .await?
                    .into_inner()
                    .cities
                    .into_iter()
                    .map(|c| c.code)
                    .collect(),
            };
            let mut t = Table::new(["CITY", "KID", "STATUS", "NOT BEFORE", "NOT AFTER", "X"]);
            let mut json = serde_json::Map::new();
            for city in cities {
                let req = s.request(v1::GetIssuerKeysRequest { city: city.clone() })?;
                let resp = client.get_issuer_keys(req).await?.into_inner();
                if s.json() {
                    json.insert(city, s.value(&resp)?);
                    continue;
                }
                for k in &resp.keys {
                    t.row([
                        k.city.clone(),
                        k.kid.clone(),
                        status(k.status),
                        show_time(k.not_before.as_ref()),
                        show_time(k.not_after.as_ref()),
                        k.x.clone(),
                    ]);
                }
            }
            if s.json() {
                s.print_value(&serde_json::Value::Object(json))
            } else {
                s.say(&t.render())
            }
        }
        Command::Rotate(a) => {
            let mut s = Session::open(&a.client, out).await?;
            let request_id = a.request_id.unwrap_or_else(fresh_request_id);
            let req = s.request(v1::RotateIssuerKeyRequest {
                request_id: request_id.clone(),
                city: a.city,
            })?;
            let resp = CityRegistryServiceClient::new(s.channel.clone())
                .rotate_issuer_key(req)
                .await?
                .into_inner();
            s.print(&resp, |r| {
                let kid = |k: &Option<v1::IssuerKey>| {
                    k.as_ref().map(|k| k.kid.clone()).unwrap_or_default()
                };
                fields([
                    ("current key", kid(&r.current_key)),
                    ("retired key", kid(&r.retired_key)),
                    (
                        "signs from",
                        show_time(r.current_key.as_ref().and_then(|k| k.not_before.as_ref())),
                    ),
                    ("request id", request_id.clone()),
                ])
            })
        }
    }
}

//! Who may call what: the role table of `docs/DESIGN.md`, in one place.
//!
//! Two steps, both here:
//! - [`ROLE_TABLE`] / [`may_call`]: the roles that may call an RPC at all.
//!   The transport checks it right after authenticating, before it parses the
//!   request, so a caller without the role learns nothing about its input.
//! - one function per RPC for the part that needs the request: the city the
//!   change is in, the recognition being read. The use cases call them before
//!   anything else happens (before an idempotent replay too), so every entry
//!   point, not only gRPC, is held to the same rules.
//!
//! Reading another city's record is answered like a missing one (the
//! functions that guard reads return [`Hidden`]); changing one is
//! [`Denied`].

use crate::caller::{Caller, Denied, Role};
use crate::city::CityCode;

/// The RPCs that need a caller (ListCities, GetIssuerKeys, health and
/// reflection need none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// CityRegistryService.RotateIssuerKey
    RotateIssuerKey,
    /// CredentialService.IssueCredential
    IssueCredential,
    /// CredentialService.Suspend/Reinstate/RevokeCredential
    ChangeCredentialStatus,
    /// CredentialService.GetCredential
    GetCredential,
    /// CredentialService.ListCredentials
    ListCredentials,
    /// VerificationService.VerifyCredential
    VerifyCredential,
    /// PolicyService.ValidatePolicy
    ValidatePolicy,
    /// PolicyService.PublishPolicy
    PublishPolicy,
    /// PolicyService.SimulatePolicy
    SimulatePolicy,
    /// PolicyService.GetPolicy and ListPolicyVersions
    ReadPolicy,
    /// RecognitionService.EvaluateRecognition
    EvaluateRecognition,
    /// RecognitionService.GetRecognitionMatrix
    GetRecognitionMatrix,
    /// RecognitionService.RequestRecognition and UpdateRecognitionFacts
    DecideRecognition,
    /// RecognitionService.GetRecognition
    GetRecognition,
    /// RecognitionService.ListRecognitions
    ListRecognitions,
    /// AuditService.ListAuditEvents, GetCheckpoint, VerifyAuditChain
    ReadAudit,
    /// AuditService.WatchEvents
    WatchEvents,
}

use Role::{Auditor, CorridorAdmin, Issuer, PolicyAdmin, Recognizer};

/// Every role (policies are public rules; verifying is open to any known role).
const ANY: &[Role] = &Role::ALL;

/// Who may call each RPC at all. City scoping is in the functions below.
pub const ROLE_TABLE: [(Rpc, &[Role]); 17] = [
    (Rpc::RotateIssuerKey, &[CorridorAdmin]),
    (Rpc::IssueCredential, &[Issuer]),
    (Rpc::ChangeCredentialStatus, &[Issuer]),
    (Rpc::GetCredential, &[Issuer, Auditor, CorridorAdmin]),
    (Rpc::ListCredentials, &[Issuer, Auditor, CorridorAdmin]),
    (Rpc::VerifyCredential, ANY),
    (Rpc::ValidatePolicy, &[PolicyAdmin, CorridorAdmin]),
    (Rpc::PublishPolicy, &[PolicyAdmin]),
    (Rpc::SimulatePolicy, &[PolicyAdmin]),
    (Rpc::ReadPolicy, ANY),
    (Rpc::EvaluateRecognition, ANY),
    (Rpc::GetRecognitionMatrix, ANY),
    (Rpc::DecideRecognition, &[Recognizer]),
    (
        Rpc::GetRecognition,
        &[Recognizer, Issuer, Auditor, CorridorAdmin],
    ),
    (Rpc::ListRecognitions, &[Recognizer, Auditor, CorridorAdmin]),
    (Rpc::ReadAudit, &[Auditor, CorridorAdmin]),
    (
        Rpc::WatchEvents,
        &[Issuer, Recognizer, PolicyAdmin, Auditor, CorridorAdmin],
    ),
];

/// The roles that may call `rpc`.
pub fn roles(rpc: Rpc) -> &'static [Role] {
    ROLE_TABLE
        .iter()
        .find(|(r, _)| *r == rpc)
        .map_or(&[], |(_, roles)| roles)
}

/// Whether `caller` holds a role that may call `rpc` at all.
pub fn may_call(caller: &Caller, rpc: Rpc) -> Result<(), Denied> {
    caller.require_any(roles(rpc))
}

/// A read of another city's record: answered like a missing record, so
/// that existence does not leak across cities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hidden;

fn reads_everything(c: &Caller) -> bool {
    c.has(Auditor) || c.has(CorridorAdmin)
}

/// RotateIssuerKey: `corridor_admin`.
pub fn rotate_issuer_key(c: &Caller) -> Result<(), Denied> {
    may_call(c, Rpc::RotateIssuerKey)
}

/// IssueCredential: `issuer` of the credential's city.
pub fn issue_credential(c: &Caller, city: &CityCode) -> Result<(), Denied> {
    c.require_in_city(Issuer, city)
}

/// Suspend, Reinstate, RevokeCredential: `issuer` of the credential's city.
pub fn change_credential_status(c: &Caller, city: &CityCode) -> Result<(), Denied> {
    c.require_in_city(Issuer, city)
}

/// GetCredential: `issuer` of its city; `auditor`, `corridor_admin`.
pub fn read_credential(c: &Caller, city: &CityCode) -> Result<(), Hidden> {
    if reads_everything(c) || c.require_in_city(Issuer, city).is_ok() {
        Ok(())
    } else {
        Err(Hidden)
    }
}

/// ListCredentials: which issuing city the listing is limited to.
/// `auditor` and `corridor_admin` list any city, or all (`None`); an
/// `issuer` lists its own city, which is also the default when it names none.
pub fn list_credentials(
    c: &Caller,
    requested: Option<&CityCode>,
) -> Result<Option<CityCode>, Denied> {
    list_scope(c, requested, Issuer, "credentials")
}

/// VerifyCredential: any known role (`verifier` is the employer's).
pub fn verify_credential(c: &Caller) -> Result<(), Denied> {
    may_call(c, Rpc::VerifyCredential)
}

/// ValidatePolicy: `policy_admin` of any city, or `corridor_admin`.
pub fn validate_policy(c: &Caller) -> Result<(), Denied> {
    may_call(c, Rpc::ValidatePolicy)
}

/// PublishPolicy: `policy_admin` of that city.
pub fn publish_policy(c: &Caller, city: &CityCode) -> Result<(), Denied> {
    c.require_in_city(PolicyAdmin, city)
}

/// SimulatePolicy: `policy_admin` of that city.
pub fn simulate_policy(c: &Caller, city: &CityCode) -> Result<(), Denied> {
    c.require_in_city(PolicyAdmin, city)
}

/// GetPolicy, ListPolicyVersions: any known role (policies are public rules).
pub fn read_policy(c: &Caller) -> Result<(), Denied> {
    may_call(c, Rpc::ReadPolicy)
}

/// EvaluateRecognition: any known role (a dry run of public rules).
pub fn evaluate_recognition(c: &Caller) -> Result<(), Denied> {
    may_call(c, Rpc::EvaluateRecognition)
}

/// GetRecognitionMatrix: any known role.
pub fn recognition_matrix(c: &Caller) -> Result<(), Denied> {
    may_call(c, Rpc::GetRecognitionMatrix)
}

/// RequestRecognition, UpdateRecognitionFacts: `recognizer` of the target city.
pub fn decide_recognition(c: &Caller, target: &CityCode) -> Result<(), Denied> {
    c.require_in_city(Recognizer, target)
}

/// GetRecognition: `recognizer` of the target city, `issuer` of the source
/// city, `auditor`, `corridor_admin`.
pub fn read_recognition(c: &Caller, source: &CityCode, target: &CityCode) -> Result<(), Hidden> {
    if reads_everything(c)
        || c.require_in_city(Recognizer, target).is_ok()
        || c.require_in_city(Issuer, source).is_ok()
    {
        Ok(())
    } else {
        Err(Hidden)
    }
}

/// ListRecognitions: which target city the listing is limited to, like
/// [`list_credentials`] with `recognizer` for `issuer`.
pub fn list_recognitions(
    c: &Caller,
    requested: Option<&CityCode>,
) -> Result<Option<CityCode>, Denied> {
    list_scope(c, requested, Recognizer, "recognitions")
}

/// ListAuditEvents, GetCheckpoint, VerifyAuditChain: `auditor`,
/// `corridor_admin`.
pub fn read_audit(c: &Caller) -> Result<(), Denied> {
    may_call(c, Rpc::ReadAudit)
}

/// WatchEvents: which city's events the stream is limited to. `auditor`
/// and `corridor_admin` watch any city or all (`None`); a city's
/// `issuer`, `recognizer` or `policy_admin` watches its own city (the
/// default when it names none): the events that belong to it or concern it.
pub fn watch_events(c: &Caller, requested: Option<&CityCode>) -> Result<Option<CityCode>, Denied> {
    may_call(c, Rpc::WatchEvents)?;
    if reads_everything(c) {
        return Ok(requested.cloned());
    }
    let Some(own) = &c.city else {
        return Err(Denied("a token without a city may not watch events".into()));
    };
    match requested {
        Some(city) if city != own => Err(Denied(format!(
            "a {own} token may not watch {city}'s events"
        ))),
        _ => Ok(Some(own.clone())),
    }
}

fn list_scope(
    c: &Caller,
    requested: Option<&CityCode>,
    role: Role,
    what: &str,
) -> Result<Option<CityCode>, Denied> {
    if reads_everything(c) {
        return Ok(requested.cloned());
    }
    match requested.or(c.city.as_ref()) {
        Some(city) => c.require_in_city(role, city).map(|()| Some(city.clone())),
        None => Err(Denied(format!(
            "{} {} token without a city may not list {what}",
            if role.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            },
            role.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city(c: &str) -> CityCode {
        let Ok(c) = CityCode::parse("c", c) else {
            unreachable!()
        };
        c
    }

    fn caller(city_code: Option<&str>, roles: &[Role]) -> Caller {
        Caller {
            subject: "s".into(),
            city: city_code.map(city),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn watching_is_limited_to_the_own_city() {
        let hz = city("hangzhou");
        let hf = city("hefei");
        let hz_recognizer = caller(Some("hangzhou"), &[Recognizer]);
        assert_eq!(watch_events(&hz_recognizer, None), Ok(Some(hz.clone())));
        assert_eq!(
            watch_events(&hz_recognizer, Some(&hz)),
            Ok(Some(hz.clone()))
        );
        assert!(watch_events(&hz_recognizer, Some(&hf)).is_err());
        assert!(watch_events(&caller(None, &[Issuer]), None).is_err());
        assert!(watch_events(&caller(None, &[Role::Verifier]), None).is_err());
        let auditor = caller(None, &[Auditor]);
        assert_eq!(watch_events(&auditor, None), Ok(None));
        assert_eq!(watch_events(&auditor, Some(&hf)), Ok(Some(hf)));
        assert!(read_audit(&auditor).is_ok());
        assert!(read_audit(&hz_recognizer).is_err());
    }

    #[test]
    fn every_rpc_is_in_the_table_once() {
        use std::collections::HashSet;
        let rpcs: HashSet<Rpc> = ROLE_TABLE.iter().map(|(r, _)| *r).collect();
        assert_eq!(rpcs.len(), ROLE_TABLE.len());
        for (_, roles) in ROLE_TABLE {
            assert!(!roles.is_empty());
        }
    }

    #[test]
    fn the_role_table() {
        let hz = city("hangzhou");
        let hz_issuer = caller(Some("hangzhou"), &[Issuer]);
        let hf_issuer = caller(Some("hefei"), &[Issuer]);
        let verifier = caller(None, &[Role::Verifier]);
        let auditor = caller(None, &[Auditor]);
        let admin = caller(None, &[CorridorAdmin]);
        let hz_policy = caller(Some("hangzhou"), &[PolicyAdmin]);
        let hz_rec = caller(Some("hangzhou"), &[Recognizer]);

        assert!(rotate_issuer_key(&admin).is_ok());
        assert!(rotate_issuer_key(&hz_issuer).is_err());

        assert!(issue_credential(&hz_issuer, &hz).is_ok());
        assert!(issue_credential(&hf_issuer, &hz).is_err());
        assert!(issue_credential(&admin, &hz).is_err());
        assert!(change_credential_status(&hz_issuer, &hz).is_ok());
        assert!(change_credential_status(&hf_issuer, &hz).is_err());

        assert_eq!(read_credential(&hz_issuer, &hz), Ok(()));
        assert_eq!(read_credential(&hf_issuer, &hz), Err(Hidden));
        assert_eq!(read_credential(&auditor, &hz), Ok(()));
        assert_eq!(read_credential(&admin, &hz), Ok(()));
        assert_eq!(read_credential(&verifier, &hz), Err(Hidden));

        assert!(verify_credential(&verifier).is_ok());
        assert!(verify_credential(&hz_rec).is_ok());
        assert!(verify_credential(&caller(None, &[])).is_err());

        assert!(validate_policy(&hz_policy).is_ok());
        assert!(validate_policy(&admin).is_ok());
        assert!(validate_policy(&hz_issuer).is_err());
        assert!(publish_policy(&hz_policy, &hz).is_ok());
        assert!(publish_policy(&hz_policy, &city("hefei")).is_err());
        assert!(publish_policy(&admin, &hz).is_err());
        assert!(simulate_policy(&hz_policy, &hz).is_ok());
        assert!(simulate_policy(&hz_issuer, &hz).is_err());
        assert!(read_policy(&verifier).is_ok());
        assert!(evaluate_recognition(&verifier).is_ok());
        assert!(recognition_matrix(&auditor).is_ok());

        assert!(decide_recognition(&hz_rec, &hz).is_ok());
        assert!(decide_recognition(&hz_rec, &city("hefei")).is_err());
        assert!(decide_recognition(&hz_issuer, &hz).is_err());

        let hf = city("hefei");
        // A recognition from Hefei into Hangzhou.
        assert_eq!(read_recognition(&hz_rec, &hf, &hz), Ok(()));
        assert_eq!(
            read_recognition(&caller(Some("hefei"), &[Issuer]), &hf, &hz),
            Ok(())
        );
        assert_eq!(read_recognition(&hz_issuer, &hf, &hz), Err(Hidden));
        assert_eq!(read_recognition(&auditor, &hf, &hz), Ok(()));
        assert_eq!(read_recognition(&verifier, &hf, &hz), Err(Hidden));
    }

    #[test]
    fn list_scopes() {
        let hz = city("hangzhou");
        let hz_issuer = caller(Some("hangzhou"), &[Issuer]);
        assert_eq!(list_credentials(&hz_issuer, None), Ok(Some(hz.clone())));
        assert_eq!(
            list_credentials(&hz_issuer, Some(&hz)),
            Ok(Some(hz.clone()))
        );
        assert!(list_credentials(&hz_issuer, Some(&city("hefei"))).is_err());
        assert!(list_credentials(&caller(None, &[Issuer]), None).is_err());
        let auditor = caller(None, &[Auditor]);
        assert_eq!(list_credentials(&auditor, None), Ok(None));
        assert_eq!(list_credentials(&auditor, Some(&hz)), Ok(Some(hz.clone())));
        let rec = caller(Some("hangzhou"), &[Recognizer]);
        assert_eq!(list_recognitions(&rec, None), Ok(Some(hz)));
        assert!(list_recognitions(&caller(None, &[Recognizer]), None).is_err());
    }

    #[test]
    fn may_call_follows_the_table() {
        let verifier = caller(None, &[Role::Verifier]);
        assert!(may_call(&verifier, Rpc::VerifyCredential).is_ok());
        assert!(may_call(&verifier, Rpc::IssueCredential).is_err());
        assert!(may_call(&verifier, Rpc::ListCredentials).is_err());
        let hz_rec = caller(Some("hangzhou"), &[Recognizer]);
        assert!(may_call(&hz_rec, Rpc::GetRecognition).is_ok());
        assert!(may_call(&hz_rec, Rpc::GetCredential).is_err());
    }
}

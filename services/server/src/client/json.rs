//! `--json`: messages in the canonical protobuf JSON mapping (lowerCamelCase
//! names, enums by name, timestamps in RFC 3339, 64-bit integers as
//! strings), through the API's own descriptors (`corridor-proto`'s file
//! descriptor set) rather than a hand-written shape per message. Fields
//! with their default value are printed too (`"valid": false`), so that a
//! script finds every scalar field it looks for; unset messages and
//! optional fields are left out.

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// A message of the API with its full protobuf name.
pub trait Proto: prost::Message {
    /// `g60.talent.v1.<Message>`.
    const NAME: &'static str;
}

macro_rules! proto_names {
    ($($t:ident),* $(,)?) => {
        $(impl Proto for corridor_proto::v1::$t {
            const NAME: &'static str = concat!("g60.talent.v1.", stringify!($t));
        })*
        /// Every message printed as JSON (a test checks the descriptors have them).
        #[cfg(test)]
        const PRINTED: &[&str] = &[$(concat!("g60.talent.v1.", stringify!($t))),*];
    };
}

proto_names!(
    IssueCredentialResponse,
    GetCredentialResponse,
    ListCredentialsResponse,
    SuspendCredentialResponse,
    ReinstateCredentialResponse,
    RevokeCredentialResponse,
    VerifyCredentialResponse,
    RequestRecognitionResponse,
    GetRecognitionResponse,
    ListRecognitionsResponse,
    UpdateRecognitionFactsResponse,
    GetRecognitionMatrixResponse,
    ValidatePolicyResponse,
    PublishPolicyResponse,
    SimulatePolicyResponse,
    GetPolicyResponse,
    ListPolicyVersionsResponse,
    GetIssuerKeysResponse,
    RotateIssuerKeyResponse,
    AuditEvent,
);

/// Converts messages of the API to JSON.
#[derive(Debug, Clone)]
pub struct Json {
    pool: DescriptorPool,
    options: SerializeOptions,
}

impl Json {
    /// From the API's file descriptor set.
    pub fn new() -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(corridor_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| anyhow::anyhow!("the API's descriptors do not load: {e}"))?;
        Ok(Self {
            pool,
            options: SerializeOptions::new().skip_default_fields(false),
        })
    }

    /// `msg` as a JSON value.
    pub fn value<M: Proto>(&self, msg: &M) -> anyhow::Result<serde_json::Value> {
        let desc = self
            .pool
            .get_message_by_name(M::NAME)
            .ok_or_else(|| anyhow::anyhow!("no descriptor of {}", M::NAME))?;
        let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
            .map_err(|e| anyhow::anyhow!("{}: {e}", M::NAME))?;
        let value = dynamic
            .serialize_with_options(serde_json::value::Serializer, &self.options)
            .map_err(|e| anyhow::anyhow!("{}: {e}", M::NAME))?;
        Ok(value)
    }

    /// `msg` as indented JSON text (no final newline).
    pub fn pretty<M: Proto>(&self, msg: &M) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(&self.value(msg)?)?)
    }

    /// `msg` as JSON on one line (no final newline).
    pub fn line<M: Proto>(&self, msg: &M) -> anyhow::Result<String> {
        Ok(serde_json::to_string(&self.value(msg)?)?)
    }
}

#[cfg(test)]
mod tests {
    use corridor_proto::v1;

    use super::*;

    #[test]
    fn every_printed_message_has_a_descriptor() {
        let json = Json::new().unwrap();
        for name in PRINTED {
            assert!(json.pool.get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_canonical_mapping_with_defaults() {
        let json = Json::new().unwrap();
        let resp = v1::VerifyCredentialResponse {
            valid: false,
            checks: vec![v1::CheckResult {
                check: v1::VerificationCheck::Status.into(),
                outcome: v1::CheckOutcome::Failed.into(),
                detail: "revoked: fraud".into(),
            }],
            claims: Some(v1::CredentialClaims {
                credential_id: "c1".into(),
                issue_time: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            status: v1::CredentialStatus::Revoked.into(),
            recognition: None,
        };
        let v = json.value(&resp).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(v["status"], "CREDENTIAL_STATUS_REVOKED");
        assert_eq!(v["checks"][0]["check"], "VERIFICATION_CHECK_STATUS");
        assert_eq!(v["checks"][0]["outcome"], "CHECK_OUTCOME_FAILED");
        assert_eq!(v["claims"]["credentialId"], "c1");
        assert_eq!(v["claims"]["issueTime"], "2023-11-14T22:13:20Z");
        // Unset messages are left out, not null.
        assert!(v.get("recognition").is_none());
        assert!(v["claims"].get("validUntil").is_none());
        // One line for streams.
        assert!(!json.line(&resp).unwrap().contains('\n'));
    }

    #[test]
    fn sixty_four_bit_integers_are_strings() {
        let json = Json::new().unwrap();
        let e = v1::AuditEvent {
            sequence: 42,
            action: "credential.issued".into(),
            ..Default::default()
        };
        let v = json.value(&e).unwrap();
        assert_eq!(v["sequence"], "42");
        assert_eq!(v["action"], "credential.issued");
    }
}

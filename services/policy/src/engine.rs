//! The engine: the schema, parsed once, and Cedar's validator and
//! authorizer. Compiling is in `compile.rs`, deciding in `eval.rs`, the
//! public entry points in `pipeline.rs`.

use std::str::FromStr;

use cedar_policy::{Authorizer, EntityTypeName, EntityUid, Schema, Validator};

/// The schema every policy is validated against.
pub const SCHEMA_SRC: &str = include_str!("schema.cedarschema");

/// The engine: the schema, parsed once, and Cedar's validator and authorizer.
#[derive(Debug)]
pub struct Engine {
    pub(crate) validator: Validator,
    pub(crate) authorizer: Authorizer,
    pub(crate) action: EntityUid,
    pub(crate) city_type: EntityTypeName,
    pub(crate) credential_type: EntityTypeName,
    pub(crate) datetimes: crate::eval::Datetimes,
}

impl Engine {
    /// Parses the schema.
    pub fn new() -> Result<Self, String> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(SCHEMA_SRC).map_err(|e| format!("policy schema: {e}"))?;
        let action = EntityUid::from_str(r#"G60::Action::"recognize""#)
            .map_err(|e| format!("action uid: {e}"))?;
        let city_type = EntityTypeName::from_str("G60::City").map_err(|e| format!("type: {e}"))?;
        let credential_type =
            EntityTypeName::from_str("G60::Credential").map_err(|e| format!("type: {e}"))?;
        Ok(Self {
            city_type,
            credential_type,
            validator: Validator::new(schema),
            authorizer: Authorizer::new(),
            action,
            datetimes: crate::eval::Datetimes::default(),
        })
    }
}

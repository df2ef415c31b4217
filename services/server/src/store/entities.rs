//! sea-orm entities, one module per table. The schema itself is owned by the
//! `corridor-migrations` crate; these mirror it column for column.

/// `cities`: the corridor member cities.
pub mod city {
    use sea_orm::entity::prelude::*;

    /// A row of `cities`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "cities")]
    pub struct Model {
        /// City code.
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        /// Chinese name.
        pub name_zh: String,
        /// English name.
        pub name_en: String,
        /// Province.
        pub province: String,
        /// When the city joined the registry.
        pub joined_at: ChronoDateTimeUtc,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `issuer_keys`: city signing keys, private halves sealed.
pub mod issuer_key {
    use sea_orm::entity::prelude::*;

    /// A row of `issuer_keys`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "issuer_keys")]
    pub struct Model {
        /// Key id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        /// Owning city.
        pub city_code: String,
        /// Raw Ed25519 public key (32 bytes).
        pub public_key: Vec<u8>,
        /// `nonce || ChaCha20-Poly1305(seed)` under the KEK, kid as AAD.
        pub sealed_private_key: Vec<u8>,
        /// `current` or `retired`.
        pub status: String,
        /// Start of the signing window.
        pub not_before: ChronoDateTimeUtc,
        /// End of the signing window.
        pub not_after: Option<ChronoDateTimeUtc>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `credentials`: issued credentials.
pub mod credential {
    use sea_orm::entity::prelude::*;

    /// A row of `credentials`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "credentials")]
    pub struct Model {
        /// Credential id (UUIDv7).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Issuing city.
        pub issuer_city: String,
        /// Category name (`PROFESSIONAL_TITLE`, ...).
        pub category: String,
        /// Series slug.
        pub series: String,
        /// Level.
        pub level: i32,
        /// Title.
        pub title: String,
        /// Holder display name.
        pub holder_name: String,
        /// HMAC of the holder's national ID (never the ID itself).
        pub holder_hash: String,
        /// Start of validity.
        pub valid_from: ChronoDateTimeUtc,
        /// End of validity.
        pub valid_until: Option<ChronoDateTimeUtc>,
        /// `active`, `suspended` or `revoked`.
        pub status: String,
        /// Reason of the last status change.
        pub status_reason: Option<String>,
        /// Signing key.
        pub kid: String,
        /// The VC-JWT.
        pub token: String,
        /// Subject of the issuing caller.
        pub issued_by: String,
        /// Issuance time.
        pub issued_at: ChronoDateTimeUtc,
        /// Last change.
        pub updated_at: ChronoDateTimeUtc,
        /// Its status list (with `status_index`; NULL before status lists).
        pub status_list: Option<i32>,
        /// Its index in that list.
        pub status_index: Option<i32>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `request_log`: the idempotency record of mutating requests.
pub mod request_log {
    use sea_orm::entity::prelude::*;

    /// A row of `request_log`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "request_log")]
    pub struct Model {
        /// Caller subject.
        #[sea_orm(primary_key, auto_increment = false)]
        pub caller: String,
        /// Client request id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// RPC name.
        pub operation: String,
        /// SHA-256 (hex) of the request payload without its request id.
        pub payload_hash: String,
        /// The encoded response returned to the first attempt.
        pub response: Vec<u8>,
        /// When the first attempt arrived.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `audit_events`: the append-only audit trail.
pub mod audit_event {
    use sea_orm::entity::prelude::*;

    /// A row of `audit_events`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        /// Sequence number.
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// When it happened.
        pub occurred_at: ChronoDateTimeUtc,
        /// Caller subject.
        pub actor: String,
        /// Caller city, if any.
        pub actor_city: Option<String>,
        /// What happened (`credential.issued`, ...).
        pub action: String,
        /// Kind of subject (`credential`, `issuer_key`).
        pub subject_type: String,
        /// Subject id.
        pub subject_id: String,
        /// JSON details; never personal data.
        pub detail: String,
        /// The city the event belongs to (its per-city chain).
        pub city: Option<String>,
        /// Another city it concerns.
        pub other_city: Option<String>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `policy_versions`: immutable versions of each city's policy.
pub mod policy_version {
    use sea_orm::entity::prelude::*;

    /// A row of `policy_versions`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "policy_versions")]
    pub struct Model {
        /// City.
        #[sea_orm(primary_key, auto_increment = false)]
        pub city_code: String,
        /// Version, from 1.
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i32,
        /// Cedar source.
        pub source: String,
        /// From when it decides.
        pub effective_from: ChronoDateTimeUtc,
        /// When it was published.
        pub published_at: ChronoDateTimeUtc,
        /// Publisher subject.
        pub published_by: String,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `recognitions`: recorded recognition decisions.
pub mod recognition {
    use sea_orm::entity::prelude::*;

    /// A row of `recognitions`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recognitions")]
    pub struct Model {
        /// Recognition id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Source credential.
        pub credential_id: Uuid,
        /// Issuing city of the source credential.
        pub source_city: String,
        /// Receiving city.
        pub target_city: String,
        /// Outcome name.
        pub outcome: String,
        /// Mapped level.
        pub mapped_level: Option<i32>,
        /// Facts (JSON).
        pub facts: String,
        /// Explanation (JSON).
        pub explanation: String,
        /// Deciding policy version (0 for a guard rail).
        pub policy_version: i32,
        /// `open`, `decided`, `suspended`, `void`.
        pub status: String,
        /// While suspended: the status to restore.
        pub suspended_from: Option<String>,
        /// Attestation VC-JWT.
        pub attestation: String,
        /// Requesting subject.
        pub decided_by: String,
        /// First decision.
        pub decided_at: ChronoDateTimeUtc,
        /// Last change.
        pub updated_at: ChronoDateTimeUtc,
        /// Its attestations' status list in the target city's lists.
        pub status_list: Option<i32>,
        /// Its index in that list.
        pub status_index: Option<i32>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

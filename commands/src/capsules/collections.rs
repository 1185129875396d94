//! Collections of capsules (issue 13, item 9) over the [`Collection`] aggregate: curated ones
//! made and edited by platform admins, user ones by their owner; admins feature them.
//!
//! A collection's id is derived from its owner and the request's idempotency key (UUID v5), so
//! a retried creation lands on the same aggregate and answers `AlreadyCreated` at worst; without
//! a key it is a fresh UUID v7. A capsule is added only when it exists in the log (its capsule
//! aggregate has an owner), read from the aggregate, never a read model.

use agora_domain::capsules::aggregate::Actor;
use agora_domain::capsules::collection::{
    Collection, CollectionCommand, CollectionError, CollectionKind, CreateCollection, Title,
};
use agora_domain::capsules::CapsuleName;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{command_error, CapsuleService, CapsuleServiceError};
use crate::metadata::CommandMetadata;

/// Namespace of collection ids derived from an owner and an idempotency key.
const COLLECTION_NAMESPACE: Uuid = Uuid::from_u128(0x636f_6c6c_6563_7469_6f6e_2d69_6473_0001);
/// Longest collection id accepted in a request.
pub const MAX_COLLECTION_ID_LEN: usize = 64;

/// What a collection command answers (stored as the idempotent outcome).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionReceipt {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub owner: String,
    pub capsules: Vec<String>,
    pub featured: bool,
}

/// A change to an existing collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CollectionChange {
    Add { capsule: String },
    Remove { capsule: String },
    Rename { title: String },
    Feature { featured: bool },
}

fn collection_error(e: CollectionError) -> CapsuleServiceError {
    CapsuleServiceError::Collection(e)
}

pub fn kind_str(kind: Option<CollectionKind>) -> &'static str {
    match kind {
        Some(CollectionKind::Curated) => "curated",
        Some(CollectionKind::UserCreated) => "user",
        None => "",
    }
}

/// A collection id from user input: `col-` and a UUID.
pub fn collection_id(id: &str) -> Result<String, CapsuleServiceError> {
    let valid = id.len() <= MAX_COLLECTION_ID_LEN
        && id
            .strip_prefix("col-")
            .is_some_and(|u| Uuid::parse_str(u).is_ok());
    if valid {
        Ok(id.to_owned())
    } else {
        Err(CapsuleServiceError::BadInput(format!(
            "collection id {id:?} is not `col-<uuid>`"
        )))
    }
}

impl CapsuleService {
    async fn collection_state(&self, id: &str) -> Result<Collection, CapsuleServiceError> {
        self.collections
            .load(id)
            .await
            .map_err(|e| command_error(e, collection_error))
    }

    async fn collection_receipt(&self, id: &str) -> Result<CollectionReceipt, CapsuleServiceError> {
        let c = self.collection_state(id).await?;
        let Some(title) = c.title() else {
            return Err(CapsuleServiceError::NotFound(format!("collection {id}")));
        };
        Ok(CollectionReceipt {
            id: id.to_owned(),
            kind: kind_str(c.kind()).to_owned(),
            title: title.as_str().to_owned(),
            owner: c.owner().to_owned(),
            capsules: c.capsules().iter().map(|n| n.as_str().to_owned()).collect(),
            featured: c.is_featured(),
        })
    }

    /// Creates a collection owned by `by` (curated ones: admins only).
    pub async fn create_collection(
        &self,
        by: Actor,
        curated: bool,
        title: &str,
        description: &str,
        meta: &CommandMetadata,
    ) -> Result<CollectionReceipt, CapsuleServiceError> {
        let title = Title::parse(title).map_err(collection_error)?;
        let uuid = match &meta.idempotency_key {
            Some(key) => Uuid::new_v5(
                &COLLECTION_NAMESPACE,
                format!("{}\u{0}{key}", by.id).as_bytes(),
            ),
            None => Uuid::now_v7(),
        };
        let id = format!("col-{uuid}");
        let command = CollectionCommand::Create(CreateCollection {
            kind: if curated {
                CollectionKind::Curated
            } else {
                CollectionKind::UserCreated
            },
            title,
            description: description.trim().to_owned(),
            by,
            occurred_at: meta.occurred_at,
        });
        self.collections
            .execute(&id, command, meta)
            .await
            .map_err(|e| command_error(e, collection_error))?;
        self.collection_receipt(&id).await
    }

    /// Applies `change` to collection `id` as `by`.
    pub async fn change_collection(
        &self,
        id: &str,
        by: Actor,
        change: CollectionChange,
        meta: &CommandMetadata,
    ) -> Result<CollectionReceipt, CapsuleServiceError> {
        let id = collection_id(id)?;
        if self.collection_state(&id).await?.title().is_none() {
            return Err(CapsuleServiceError::NotFound(format!("collection {id}")));
        }
        let at = meta.occurred_at;
        let command = match change {
            CollectionChange::Add { capsule } => {
                let capsule = super::capsule_name(&capsule)?;
                self.require_capsule(&capsule).await?;
                CollectionCommand::AddCapsule {
                    capsule,
                    by,
                    occurred_at: at,
                }
            }
            CollectionChange::Remove { capsule } => CollectionCommand::RemoveCapsule {
                capsule: super::capsule_name(&capsule)?,
                by,
                occurred_at: at,
            },
            CollectionChange::Rename { title } => CollectionCommand::Rename {
                title: Title::parse(&title).map_err(collection_error)?,
                by,
                occurred_at: at,
            },
            CollectionChange::Feature { featured } => CollectionCommand::Feature {
                featured,
                by,
                occurred_at: at,
            },
        };
        self.collections
            .execute(&id, command, meta)
            .await
            .map_err(|e| command_error(e, collection_error))?;
        self.collection_receipt(&id).await
    }

    async fn require_capsule(&self, name: &CapsuleName) -> Result<(), CapsuleServiceError> {
        if self.capsule(name).await?.owner().is_none() {
            return Err(CapsuleServiceError::NotFound(format!("capsule {name}")));
        }
        Ok(())
    }
}

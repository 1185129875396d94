//! Collections and the trending list over GraphQL: `capsuleCollections`, `capsuleCollection`,
//! `trendingCapsules`; `createCapsuleCollection`, `addCapsuleToCollection`,
//! `removeCapsuleFromCollection`, `renameCapsuleCollection`, `featureCapsuleCollection` (each
//! idempotent under the client's key). The rules are [`super::collections`]'.

use agora_commands::capsules::collections::{CollectionChange, CollectionReceipt};
use agora_domain::access::Role;
use agora_domain::capsules::community::trending::TrendingEntry;
use agora_projections::capsule_collections::{CollectionFilter, CollectionRow};
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::collections::{self, CollectionOp};
use super::gql::refusal_error;
use super::{actor_id, read_error};
use crate::graphql::schema::{caller, counted, metadata, resolve_key, state};

type Res<T> = Result<T, async_graphql::Error>;

const ANY_ROLE: &[Role] = &Role::ALL;

/// A collection after a command.
#[derive(SimpleObject)]
pub struct CapsuleCollectionReceipt {
    pub id: String,
    /// `curated` or `user`.
    pub kind: String,
    pub title: String,
    pub owner: String,
    pub capsules: Vec<String>,
    pub featured: bool,
}

impl From<CollectionReceipt> for CapsuleCollectionReceipt {
    fn from(r: CollectionReceipt) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            title: r.title,
            owner: r.owner,
            capsules: r.capsules,
            featured: r.featured,
        }
    }
}

/// A listed collection (`capsules` only on `capsuleCollection`).
#[derive(SimpleObject)]
pub struct CapsuleCollectionItem {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub description: String,
    pub owner: String,
    pub featured: bool,
    pub capsule_count: i64,
    pub capsules: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn item(r: CollectionRow, capsules: Option<Vec<String>>) -> CapsuleCollectionItem {
    CapsuleCollectionItem {
        id: r.id,
        kind: r.kind,
        title: r.title,
        description: r.description,
        owner: r.owner,
        featured: r.featured,
        capsule_count: r.capsule_count,
        capsules,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// One capsule of the trending list, with every term of its score (decimal strings).
#[derive(SimpleObject)]
pub struct TrendingCapsule {
    pub name: String,
    pub score: String,
    pub installs_in_window: u32,
    pub weighted_installs: String,
    pub ratings_in_window: u32,
    pub bayesian_rating: String,
}

impl From<TrendingEntry> for TrendingCapsule {
    fn from(e: TrendingEntry) -> Self {
        Self {
            name: e.capsule.as_str().to_owned(),
            score: e.score.to_string(),
            installs_in_window: e.installs_in_window,
            weighted_installs: e.weighted_installs.to_string(),
            ratings_in_window: e.ratings_in_window,
            bayesian_rating: e.bayesian_rating.to_string(),
        }
    }
}

#[derive(Default)]
pub struct CapsuleCollectionQuery;

#[Object]
impl CapsuleCollectionQuery {
    /// Collections with capsules, most recently changed first (any key): `featured` only the
    /// featured ones, `mine` the caller's (empty ones too), `kind` `curated` or `user`.
    async fn capsule_collections(
        &self,
        ctx: &Context<'_>,
        featured: Option<bool>,
        mine: Option<bool>,
        kind: Option<String>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> Res<Vec<CapsuleCollectionItem>> {
        let p = caller(ctx, ANY_ROLE)?;
        let (first, offset) = collections::page(first.map(i64::from), offset.map(i64::from))?;
        let filter = CollectionFilter {
            featured_only: featured.unwrap_or(false),
            owner: mine.unwrap_or(false).then(|| actor_id(p)),
            kind: collections::kind_filter(kind)?,
        };
        let rows = state(ctx)
            .capsules
            .collections
            .list(&filter, offset, first)
            .await
            .map_err(read_error)?;
        Ok(rows.into_iter().map(|r| item(r, None)).collect())
    }

    /// One collection and its capsules in the order added; null when there is none.
    async fn capsule_collection(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Res<Option<CapsuleCollectionItem>> {
        caller(ctx, ANY_ROLE)?;
        let found = state(ctx)
            .capsules
            .collections
            .get(&id)
            .await
            .map_err(read_error)?;
        Ok(found.map(|(row, capsules)| item(row, Some(capsules))))
    }

    /// Capsules installed and liked in the last 7 days, best first (any key).
    async fn trending_capsules(&self, ctx: &Context<'_>) -> Res<Vec<TrendingCapsule>> {
        caller(ctx, ANY_ROLE)?;
        let entries = state(ctx)
            .capsules
            .trending
            .trending(Utc::now())
            .await
            .map_err(read_error)?;
        Ok(entries.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct CapsuleCollectionMutation;

async fn once(
    ctx: &Context<'_>,
    op: CollectionOp,
    key: Option<String>,
) -> Res<CapsuleCollectionReceipt> {
    let p = caller(ctx, ANY_ROLE)?;
    let key = resolve_key(ctx, key)?;
    let meta = metadata(ctx, p, &key)?;
    let s = state(ctx);
    let result = collections::run(s, p, &key, meta, op).await;
    counted(s, "capsule_collection", result)?
        .map(Into::into)
        .map_err(refusal_error)
}

fn change(id: String, change: CollectionChange) -> CollectionOp {
    CollectionOp::Change { id, change }
}

#[Object]
impl CapsuleCollectionMutation {
    /// Creates a collection the caller owns; `curated` ones are platform admins'.
    async fn create_capsule_collection(
        &self,
        ctx: &Context<'_>,
        title: String,
        description: Option<String>,
        curated: Option<bool>,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleCollectionReceipt> {
        let op = CollectionOp::Create {
            curated: curated.unwrap_or(false),
            title,
            description: description.unwrap_or_default(),
        };
        once(ctx, op, idempotency_key).await
    }

    /// Adds a capsule (the owner; platform admins for curated collections).
    async fn add_capsule_to_collection(
        &self,
        ctx: &Context<'_>,
        id: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleCollectionReceipt> {
        let op = change(id, CollectionChange::Add { capsule: name });
        once(ctx, op, idempotency_key).await
    }

    async fn remove_capsule_from_collection(
        &self,
        ctx: &Context<'_>,
        id: String,
        name: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleCollectionReceipt> {
        let op = change(id, CollectionChange::Remove { capsule: name });
        once(ctx, op, idempotency_key).await
    }

    async fn rename_capsule_collection(
        &self,
        ctx: &Context<'_>,
        id: String,
        title: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleCollectionReceipt> {
        let op = change(id, CollectionChange::Rename { title });
        once(ctx, op, idempotency_key).await
    }

    /// Features or unfeatures a collection (platform admins; never an empty one).
    async fn feature_capsule_collection(
        &self,
        ctx: &Context<'_>,
        id: String,
        featured: bool,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleCollectionReceipt> {
        let op = change(id, CollectionChange::Feature { featured });
        once(ctx, op, idempotency_key).await
    }
}

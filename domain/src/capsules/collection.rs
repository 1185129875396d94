//! The [`Collection`] aggregate: a named list of capsules, curated by admins or created by a
//! user; admins feature collections on the marketplace's home page. The aggregate id is chosen
//! by the commands layer (a generated id passed in, like every other fact).
//!
//! Rules (each has a given/when/then test in `collection_tests.rs`):
//! - a curated collection is created by an admin, a user collection by anyone; a collection is
//!   created once;
//! - the owner edits a user collection; any admin edits a curated one;
//! - at most [`MAX_CAPSULES`] capsules, each once, in the order added: adding one already
//!   there is a no-op, removing one not there is [`CollectionError::CapsuleNotInCollection`];
//! - titles are 1–[`MAX_TITLE_CHARS`] characters, descriptions at most
//!   [`MAX_DESCRIPTION_CHARS`];
//! - only an admin features or unfeatures, and only a collection with at least one capsule is
//!   featured.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::aggregate::Actor;
use super::CapsuleName;
use crate::access::Role;

/// Most capsules in one collection.
pub const MAX_CAPSULES: usize = 200;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionKind {
    /// Made by the platform's admins.
    Curated,
    /// Made by a user for themselves and others.
    UserCreated,
}

/// A collection's title: trimmed, 1–100 characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Title(String);

impl Title {
    pub fn parse(input: &str) -> Result<Title, CollectionError> {
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.chars().count() > MAX_TITLE_CHARS {
            return Err(CollectionError::InvalidTitle {
                max_chars: MAX_TITLE_CHARS,
            });
        }
        Ok(Title(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Title {
    type Error = CollectionError;

    fn try_from(input: String) -> Result<Title, CollectionError> {
        Title::parse(&input)
    }
}

impl From<Title> for String {
    fn from(title: Title) -> String {
        title.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCollection {
    pub kind: CollectionKind,
    pub title: Title,
    pub description: String,
    pub by: Actor,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectionCommand {
    Create(CreateCollection),
    AddCapsule {
        capsule: CapsuleName,
        by: Actor,
        occurred_at: DateTime<Utc>,
    },
    RemoveCapsule {
        capsule: CapsuleName,
        by: Actor,
        occurred_at: DateTime<Utc>,
    },
    Rename {
        title: Title,
        by: Actor,
        occurred_at: DateTime<Utc>,
    },
    Feature {
        featured: bool,
        by: Actor,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectionEvent {
    CollectionCreated {
        kind: CollectionKind,
        title: Title,
        description: String,
        owner: String,
        occurred_at: DateTime<Utc>,
    },
    CapsuleAdded {
        capsule: CapsuleName,
        by: String,
        occurred_at: DateTime<Utc>,
    },
    CapsuleRemoved {
        capsule: CapsuleName,
        by: String,
        occurred_at: DateTime<Utc>,
    },
    CollectionRenamed {
        from: Title,
        to: Title,
        by: String,
        occurred_at: DateTime<Utc>,
    },
    CollectionFeatured {
        by: String,
        occurred_at: DateTime<Utc>,
    },
    CollectionUnfeatured {
        by: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for CollectionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CollectionCreated { .. } => "CapsuleCollectionCreated",
            Self::CapsuleAdded { .. } => "CapsuleCollectionCapsuleAdded",
            Self::CapsuleRemoved { .. } => "CapsuleCollectionCapsuleRemoved",
            Self::CollectionRenamed { .. } => "CapsuleCollectionRenamed",
            Self::CollectionFeatured { .. } => "CapsuleCollectionFeatured",
            Self::CollectionUnfeatured { .. } => "CapsuleCollectionUnfeatured",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::FIRST_VERSION.to_string()
    }
}

/// Why a collection command was refused. None is retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectionError {
    #[error("a title has 1 to {max_chars} characters")]
    InvalidTitle { max_chars: usize },
    #[error("a description has at most {max_chars} characters")]
    DescriptionTooLong { max_chars: usize },
    #[error("the collection already exists")]
    AlreadyCreated,
    #[error("no such collection")]
    NotCreated,
    #[error("only an admin may do this")]
    AdminOnly,
    #[error("only the collection's owner ({owner}) may change it")]
    NotOwner { owner: String },
    #[error("a collection holds at most {max_capsules} capsules")]
    CollectionFull { max_capsules: usize },
    #[error("{capsule} is not in the collection")]
    CapsuleNotInCollection { capsule: CapsuleName },
    #[error("an empty collection cannot be featured")]
    EmptyCollection,
}

impl CollectionError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    kind: Option<CollectionKind>,
    owner: String,
    title: Option<Title>,
    /// In the order added.
    capsules: Vec<CapsuleName>,
    featured: bool,
}

impl Collection {
    /// The title; `None` before the collection is created.
    pub fn title(&self) -> Option<&Title> {
        self.title.as_ref()
    }

    pub fn kind(&self) -> Option<CollectionKind> {
        self.kind
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn capsules(&self) -> &[CapsuleName] {
        &self.capsules
    }

    pub fn is_featured(&self) -> bool {
        self.featured
    }

    pub fn decide(
        &self,
        command: CollectionCommand,
    ) -> Result<Vec<CollectionEvent>, CollectionError> {
        use CollectionCommand as C;
        use CollectionEvent as E;
        if let C::Create(c) = command {
            return self.create(c);
        }
        let Some(title) = &self.title else {
            return Err(CollectionError::NotCreated);
        };
        Ok(match command {
            C::Create(_) => vec![],
            C::AddCapsule {
                capsule,
                by,
                occurred_at,
            } => {
                self.may_edit(&by)?;
                if self.capsules.contains(&capsule) {
                    return Ok(vec![]);
                }
                if self.capsules.len() >= MAX_CAPSULES {
                    return Err(CollectionError::CollectionFull {
                        max_capsules: MAX_CAPSULES,
                    });
                }
                vec![E::CapsuleAdded {
                    capsule,
                    by: by.id,
                    occurred_at,
                }]
            }
            C::RemoveCapsule {
                capsule,
                by,
                occurred_at,
            } => {
                self.may_edit(&by)?;
                if !self.capsules.contains(&capsule) {
                    return Err(CollectionError::CapsuleNotInCollection { capsule });
                }
                vec![E::CapsuleRemoved {
                    capsule,
                    by: by.id,
                    occurred_at,
                }]
            }
            C::Rename {
                title: to,
                by,
                occurred_at,
            } => {
                self.may_edit(&by)?;
                if &to == title {
                    return Ok(vec![]);
                }
                vec![E::CollectionRenamed {
                    from: title.clone(),
                    to,
                    by: by.id,
                    occurred_at,
                }]
            }
            C::Feature {
                featured,
                by,
                occurred_at,
            } => {
                if by.role != Role::Admin {
                    return Err(CollectionError::AdminOnly);
                }
                match (featured, self.featured) {
                    (true, false) if self.capsules.is_empty() => {
                        return Err(CollectionError::EmptyCollection)
                    }
                    (true, false) => vec![E::CollectionFeatured {
                        by: by.id,
                        occurred_at,
                    }],
                    (false, true) => vec![E::CollectionUnfeatured {
                        by: by.id,
                        occurred_at,
                    }],
                    _ => vec![],
                }
            }
        })
    }

    fn create(&self, c: CreateCollection) -> Result<Vec<CollectionEvent>, CollectionError> {
        if self.title.is_some() {
            return Err(CollectionError::AlreadyCreated);
        }
        if c.kind == CollectionKind::Curated && c.by.role != Role::Admin {
            return Err(CollectionError::AdminOnly);
        }
        if c.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(CollectionError::DescriptionTooLong {
                max_chars: MAX_DESCRIPTION_CHARS,
            });
        }
        Ok(vec![CollectionEvent::CollectionCreated {
            kind: c.kind,
            title: c.title,
            description: c.description,
            owner: c.by.id,
            occurred_at: c.occurred_at,
        }])
    }

    fn may_edit(&self, by: &Actor) -> Result<(), CollectionError> {
        let curated_by_admin = self.kind == Some(CollectionKind::Curated) && by.role == Role::Admin;
        if by.id == self.owner || curated_by_admin {
            return Ok(());
        }
        Err(CollectionError::NotOwner {
            owner: self.owner.clone(),
        })
    }
}

impl Aggregate for Collection {
    const TYPE: &'static str = "capsule_collection";
    type Command = CollectionCommand;
    type Event = CollectionEvent;
    type Error = CollectionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CollectionEvent::CollectionCreated {
                kind, title, owner, ..
            } => {
                self.kind = Some(kind);
                self.title = Some(title);
                self.owner = owner;
            }
            CollectionEvent::CapsuleAdded { capsule, .. } => self.capsules.push(capsule),
            CollectionEvent::CapsuleRemoved { capsule, .. } => {
                self.capsules.retain(|c| c != &capsule)
            }
            CollectionEvent::CollectionRenamed { to, .. } => self.title = Some(to),
            CollectionEvent::CollectionFeatured { .. } => self.featured = true,
            CollectionEvent::CollectionUnfeatured { .. } => self.featured = false,
        }
    }
}

#[cfg(test)]
#[path = "collection_tests.rs"]
mod tests;

//! Agora's read side: the projection engine (checkpointed catch-up readers of the global log),
//! the read models it maintains, their queries, and rebuild-and-compare.

pub mod access;
pub mod audit;
pub mod capsule_collections;
pub mod capsule_installs;
pub mod capsule_reviews;
pub mod capsule_search;
pub mod capsules;
pub mod engine;
pub mod host;
pub mod lapverse;
pub mod ledger;
pub mod logmarket;
pub mod parking;
pub mod rebuild;
pub mod signing_key;

pub use engine::{Projection, ProjectionError, ProjectionRunner, ProjectionStatus};
pub use host::{all_projections, projection_named, ProjectionHost};

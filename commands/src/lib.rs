//! Agora's write side: the event store over PostgreSQL or SQLite, command metadata, and the
//! command bus that runs cqrs-es aggregates. Read models live in `agora-projections`.

pub mod append;
pub mod bus;
pub mod capsules;
pub mod executions;
pub mod journal;
pub mod lapverse;
pub mod lease;
pub mod logmarket;
pub mod metadata;
pub mod pgadmin;
pub mod process;
pub mod store;
pub mod subjects;
pub mod tail;
pub mod turns;
pub mod webhooks;

pub use bus::{CommandBus, CommandError, CommitSignal};
pub use metadata::CommandMetadata;
pub use store::{
    Access, Backend, EventFilter, LogPosition, Page, PoolSizes, Store, StoreLocation, StoredEvent,
};

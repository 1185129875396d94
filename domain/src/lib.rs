//! Agora's events, aggregates and pure business rules.
//!
//! No IO, no clock, no randomness: time and ids come in with the command.

pub mod access;
pub mod capsules;
pub mod executions;
pub mod forecast;
pub mod ledger;
pub mod logmarket;
pub mod money;
pub mod parking;
pub mod templates;
pub mod tenancy;
pub mod versioning;

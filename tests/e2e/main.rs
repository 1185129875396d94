//! End-to-end and storage tests: one binary, each test on its own fresh database.

mod access;
mod api;
mod audit_seal;
mod bounded_load;
mod common;
mod http_errors;
mod idempotency;
mod lapverse;
mod ledger_guards;
mod ledger_projection;
mod logmarket;
mod parking;
mod projection_engine;
mod store_contract;
mod subscription_limits;
mod upcasting;

//! End-to-end and storage tests: one binary, each test on its own fresh database.

mod access;
mod api;
mod audit_seal;
mod auth_matrix;
mod bounded_load;
mod capsule_installs;
mod capsule_search;
mod capsules;
mod common;
mod group_commit;
mod http_errors;
mod idempotency;
mod ingest;
mod lapverse;
mod lease;
mod ledger_guards;
mod ledger_projection;
mod logmarket;
mod logmarket_shared;
mod logmarket_tenants;
mod parking;
mod projection_engine;
mod roles;
mod store_contract;
mod subscription_limits;
mod upcasting;

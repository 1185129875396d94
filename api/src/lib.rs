//! Agora's server and command-line tools (binary `agora`).
// The merged GraphQL roots nest deeply enough to pass the default query depth of the compiler.
#![recursion_limit = "256"]

pub mod app;
pub mod audit_cli;
pub mod bench;
pub mod capsules;
pub mod config;
pub mod eval;
pub mod eval_agents;
pub mod eval_httpparams;
pub mod eval_logchunks;
pub mod executions;
pub mod graphql;
pub mod http_errors;
pub mod keys;
pub mod lapverse;
pub mod logmarket;
pub mod metrics;
pub mod parked;
pub mod parked_cli;
pub mod ratelimit;
pub mod redact;
pub mod roles;
pub mod serve;

//! Agora's server and command-line tools (binary `agora`).

pub mod app;
pub mod bench;
pub mod config;
pub mod serve;

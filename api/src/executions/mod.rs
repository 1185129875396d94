//! Agent executions over the API (issue 14, seed 002): the seed's
//! `POST /v1/agents/{agentId}/executions` ([`rest`]). The rules are the commands layer's
//! [`agora_commands::executions`].

pub mod rest;

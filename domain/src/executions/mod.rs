//! Agent executions (seed 002, issue 14): what an agent (or a capsule) reports about one run,
//! validated under limits and anonymised before anything is stored.
//!
//! - [`anonymise`]: IP addresses to their network (IPv4 /24, IPv6 /48), user agents to client
//!   family, major version, OS and category, error messages through the marketplace's redaction
//!   (secrets, paths, e-mails, IPs) and a length cap.
//! - [`report`]: the report as a client sends it ([`report::ExecutionReport`]) and the valid,
//!   anonymised record ([`report::Execution`]) it becomes, every problem named by its field.
//! - [`aggregate`]: the `agent_execution` stream an ingested execution starts, its counted
//!   fields in the clear and the subject's own sealed with the subject's key.
//!
//! Input and output content never enter: only their size and type.

pub mod aggregate;
pub mod anonymise;
pub mod report;
pub mod subject;

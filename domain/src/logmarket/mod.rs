//! The log data marketplace (seed 000): analysers, scoring and price, the analysis and seller
//! aggregates, gamification.

pub mod analysers;
pub mod insight;
pub mod redact;

//! The log data marketplace (seed 000): analysers, scoring and price, the analysis and seller
//! aggregates, gamification.

pub mod aggregate;
pub mod analysers;
pub mod analysis;
pub mod claims;
pub mod insight;
pub mod pricing;
pub mod redact;
pub mod scoring;
pub mod seller;

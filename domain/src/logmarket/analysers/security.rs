//! TODO: rules are being written.

use super::{AnalyserConfig, LogText};
use crate::logmarket::insight::Insight;

pub fn analyse(_log: &LogText<'_>, _config: &AnalyserConfig) -> Vec<Insight> {
    Vec::new()
}

//! First-writer-wins claims that make the marketplace's one-time judgements hold across
//! processes and restarts (DESIGN.md §7): an aggregate per claimed thing, claimed by one
//! analysis under the event store's optimistic concurrency.
//!
//! - [`TemplateClaim`] (id `template-<hash>`): the analysis that first saw a log template. Only
//!   the claiming analysis counts the template as new (uniqueness score and bonus), so two
//!   processes judging one new template at once award one bonus, and a rebuilt read model (an
//!   empty in-memory cache) never awards it again.
//! - [`SellerLogDigest`] (id `digest-<seller>-<sha256>`): the analysis that first recorded a
//!   seller's log content. Later analyses of the same content by the same seller are recorded
//!   but not payable.
//!
//! Both decide the same way: an unclaimed thing is claimed by the first analysis; claiming it
//! again for the same analysis (a retried request) is a no-op; for another analysis it is
//! refused with the owner's id.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::analysis::SellerId;

/// Claim something for an analysis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCommand {
    pub analysis_id: String,
    pub occurred_at: DateTime<Utc>,
}

/// The analysis that claimed it first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimEvent {
    Claimed {
        analysis_id: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for ClaimEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Claimed { .. } => "Claimed".to_string(),
        }
    }

    fn event_version(&self) -> String {
        crate::versioning::FIRST_VERSION.to_string()
    }
}

/// Why a claim was refused. Not retryable: the owner never changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("already claimed by analysis {owner}")]
    AlreadyClaimed { owner: String },
}

/// The owner of a claim, if any.
fn decide_claim(owner: Option<&str>, command: ClaimCommand) -> Result<Vec<ClaimEvent>, ClaimError> {
    match owner {
        None => Ok(vec![ClaimEvent::Claimed {
            analysis_id: command.analysis_id,
            occurred_at: command.occurred_at,
        }]),
        Some(owner) if owner == command.analysis_id => Ok(vec![]),
        Some(owner) => Err(ClaimError::AlreadyClaimed {
            owner: owner.to_owned(),
        }),
    }
}

macro_rules! claim_aggregate {
    ($name:ident, $type:literal) => {
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            owner: Option<String>,
        }

        impl $name {
            /// The analysis that holds the claim.
            pub fn owner(&self) -> Option<&str> {
                self.owner.as_deref()
            }

            pub fn decide(&self, command: ClaimCommand) -> Result<Vec<ClaimEvent>, ClaimError> {
                decide_claim(self.owner.as_deref(), command)
            }
        }

        impl Aggregate for $name {
            const TYPE: &'static str = $type;
            type Command = ClaimCommand;
            type Event = ClaimEvent;
            type Error = ClaimError;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _service: &Self::Services,
                sink: &EventSink<Self>,
            ) -> Result<(), Self::Error> {
                for event in self.decide(command)? {
                    sink.write(event, self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                match event {
                    ClaimEvent::Claimed { analysis_id, .. } => {
                        // The first claim stands (decide never emits a second).
                        if self.owner.is_none() {
                            self.owner = Some(analysis_id);
                        }
                    }
                }
            }
        }
    };
}

claim_aggregate!(TemplateClaim, "log_template_claim");
claim_aggregate!(SellerLogDigest, "log_seller_digest");

/// The aggregate id of a template hash's claim.
pub fn template_claim_id(template_hash: &str) -> String {
    format!("template-{template_hash}")
}

/// The aggregate id of a seller's log content claim (`log_sha256` as recorded on the analysis).
pub fn seller_digest_id(seller: &SellerId, log_sha256: &str) -> String {
    format!("digest-{seller}-{log_sha256}")
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn claim(id: &str) -> ClaimCommand {
        ClaimCommand {
            analysis_id: id.into(),
            occurred_at: at(),
        }
    }

    fn claimed(id: &str) -> ClaimEvent {
        ClaimEvent::Claimed {
            analysis_id: id.into(),
            occurred_at: at(),
        }
    }

    #[test]
    fn the_first_analysis_claims_a_template() {
        TestFramework::<TemplateClaim>::with(())
            .given_no_previous_events()
            .when(claim("analysis-a"))
            .then_expect_events(vec![claimed("analysis-a")]);
    }

    #[test]
    fn a_second_analysis_is_refused_with_the_owner() {
        TestFramework::<TemplateClaim>::with(())
            .given(vec![claimed("analysis-a")])
            .when(claim("analysis-b"))
            .then_expect_error(ClaimError::AlreadyClaimed {
                owner: "analysis-a".into(),
            });
    }

    #[test]
    fn the_owner_claiming_again_is_a_no_op() {
        TestFramework::<SellerLogDigest>::with(())
            .given(vec![claimed("analysis-a")])
            .when(claim("analysis-a"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_seller_digest_is_refused_to_a_second_analysis() {
        TestFramework::<SellerLogDigest>::with(())
            .given(vec![claimed("analysis-a")])
            .when(claim("analysis-b"))
            .then_expect_error(ClaimError::AlreadyClaimed {
                owner: "analysis-a".into(),
            });
    }

    #[test]
    fn claim_ids_name_the_thing_claimed() {
        let seller = SellerId::parse("sub-pkp-1").unwrap();
        assert_eq!(template_claim_id("ab12"), "template-ab12");
        assert_eq!(seller_digest_id(&seller, "ff00"), "digest-sub-pkp-1-ff00");
    }
}

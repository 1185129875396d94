//! What a journal command needs to know before it is decided: the current balances of the
//! accounts it touches (STYLE.md §3: facts come in with the command). The read side answers
//! (`agora_projections::ledger::LedgerQueries` in production); the write side only asks.

use agora_domain::ledger::{AccountBalances, AccountId, Posting};
use agora_domain::money::Currency;
use async_trait::async_trait;

/// Where the balances of touched accounts come from.
#[async_trait]
pub trait BalanceLookup: Send + Sync {
    /// The balances in `currency` of `accounts`; an account that has none is left out (zero).
    async fn balances(
        &self,
        currency: Currency,
        accounts: &[AccountId],
    ) -> Result<AccountBalances, String>;
}

/// The accounts the postings touch.
pub fn touched(postings: &[Posting]) -> Vec<AccountId> {
    postings.iter().map(|p| p.account.clone()).collect()
}

/// Looks up the balances an entry of `postings` in `currency` needs.
pub async fn balances_for(
    lookup: &dyn BalanceLookup,
    currency: Currency,
    postings: &[Posting],
) -> Result<AccountBalances, String> {
    lookup.balances(currency, &touched(postings)).await
}

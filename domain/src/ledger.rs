//! Double-entry journal: one [`JournalEntry`] aggregate per entry id.
//!
//! The caller chooses the entry id (the aggregate id), which is what makes a
//! retried entry idempotent. Sign convention: a positive posting amount is a
//! debit, a negative one a credit; the postings of an entry sum to zero.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money, MoneyError, MAX_ABS};

/// Minimum number of postings in an entry.
pub const MIN_POSTINGS: usize = 2;
/// Maximum number of postings in an entry.
pub const MAX_POSTINGS: usize = 64;
/// Maximum memo length, in characters.
pub const MAX_MEMO_CHARS: usize = 500;
/// Maximum void reason length, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Maximum account id length, in bytes (account ids are ASCII).
pub const MAX_ACCOUNT_ID_LEN: usize = 200;
/// Largest magnitude (inclusive) an account balance may reach: the bound of any [`Money`]
/// (10^15). Also bounds the worst case of an account's pending holds (see
/// [`check_balance_bounds`]), so that posting every hold keeps the balance representable.
pub const MAX_BALANCE_ABS: Decimal = MAX_ABS;

/// Entry-id prefix of a log marketplace payment (`logpay-<analysis>`).
pub const LOG_PAYMENT_ENTRY_PREFIX: &str = "logpay-";
/// Entry-id prefix of a Lap-Verse charge (`lvcost-<work>`).
pub const LAPVERSE_CHARGE_ENTRY_PREFIX: &str = "lvcost-";
/// Entry-id prefix of a Lap-Verse refund (`lvrefund-<work>`).
pub const LAPVERSE_REFUND_ENTRY_PREFIX: &str = "lvrefund-";

/// Entry-id namespaces written only by the platform itself (process managers and services).
/// A client may not open, post or void an entry in them, so it cannot pre-empt (squat) the id
/// of an entry the system will write later. The first three are in use; the others are
/// reserved for the features that come next. Add a new system writer's prefix here.
pub const SYSTEM_ENTRY_PREFIXES: &[&str] = &[
    LOG_PAYMENT_ENTRY_PREFIX,
    LAPVERSE_CHARGE_ENTRY_PREFIX,
    LAPVERSE_REFUND_ENTRY_PREFIX,
    "capsule-",
    "billing-",
    "payout-",
    "credit-",
    "invoice-",
    "usage-",
];

/// The system namespace `entry_id` falls in, if any.
pub fn system_namespace(entry_id: &str) -> Option<&'static str> {
    SYSTEM_ENTRY_PREFIXES
        .iter()
        .copied()
        .find(|prefix| entry_id.starts_with(prefix))
}

/// Refuses an entry id in a system namespace: the rule for entries a client asks for.
pub fn check_client_entry_id(entry_id: &str) -> Result<(), LedgerError> {
    match system_namespace(entry_id) {
        Some(prefix) => Err(LedgerError::ReservedEntryId { prefix }),
        None => Ok(()),
    }
}

/// Why an account id was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountIdError {
    #[error("account id is empty")]
    Empty,
    #[error("account id is longer than {MAX_ACCOUNT_ID_LEN} characters")]
    TooLong,
    #[error("account id has an empty segment (leading, trailing or doubled ':')")]
    EmptySegment,
    #[error("account id contains {character:?}; segments allow only [a-z0-9_-]")]
    InvalidCharacter { character: char },
}

impl AccountIdError {
    /// Account id errors are about the input itself: retrying cannot help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Empty | Self::TooLong | Self::EmptySegment | Self::InvalidCharacter { .. } => {
                false
            }
        }
    }
}

/// A ledger account: `[a-z0-9_-]+` segments separated by `:`, 1..=200 chars
/// (`platform:revenue`, `seller:s-42:payable`, `tenant:acme:prepaid`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(input: &str) -> Result<AccountId, AccountIdError> {
        if input.is_empty() {
            return Err(AccountIdError::Empty);
        }
        if input.len() > MAX_ACCOUNT_ID_LEN {
            return Err(AccountIdError::TooLong);
        }
        input.split(':').try_for_each(validate_segment)?;
        Ok(AccountId(input.to_owned()))
    }

    /// `platform:funding`: where marketplace money enters the books.
    pub fn marketplace_funding() -> AccountId {
        AccountId("platform:funding".to_owned())
    }

    /// `platform:revenue`: the platform's earned fees.
    pub fn platform_revenue() -> AccountId {
        AccountId("platform:revenue".to_owned())
    }

    /// `seller:{seller}:payable`; `seller` must be a single segment.
    pub fn seller_payable(seller: &str) -> Result<AccountId, AccountIdError> {
        validate_segment(seller)?;
        AccountId::parse(&format!("seller:{seller}:payable"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_segment(segment: &str) -> Result<(), AccountIdError> {
    if segment.is_empty() {
        return Err(AccountIdError::EmptySegment);
    }
    match segment.chars().find(|c| !is_segment_char(*c)) {
        Some(character) => Err(AccountIdError::InvalidCharacter { character }),
        None => Ok(()),
    }
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.0)
    }
}

impl TryFrom<String> for AccountId {
    type Error = AccountIdError;

    fn try_from(input: String) -> Result<AccountId, AccountIdError> {
        AccountId::parse(&input)
    }
}

impl From<AccountId> for String {
    fn from(account: AccountId) -> String {
        account.0
    }
}

/// One leg of an entry: positive amount = debit, negative = credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: AccountId,
    pub amount: Money,
}

impl Posting {
    pub fn new(account: AccountId, amount: Money) -> Posting {
        Posting { account, amount }
    }
}

/// Why a ledger command was rejected. None of these is retryable: the same
/// command against the same entry will be rejected the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("an entry needs at least {MIN_POSTINGS} postings")]
    TooFewPostings,
    #[error("an entry may have at most {MAX_POSTINGS} postings")]
    TooManyPostings,
    #[error("posting to {account} has a zero amount")]
    ZeroAmountPosting { account: AccountId },
    #[error("account {account} appears more than once in the entry")]
    DuplicateAccount { account: AccountId },
    #[error("postings do not balance: they sum to {sum} instead of zero")]
    PostingsDoNotBalance { sum: Money },
    #[error("memo is longer than {MAX_MEMO_CHARS} characters")]
    MemoTooLong,
    #[error("entry not found")]
    EntryNotFound,
    #[error("an entry with this id already exists with different content")]
    EntryAlreadyExistsWithDifferentContent,
    #[error("entry was recorded directly, it is not a hold")]
    EntryIsNotAHold,
    #[error("hold was already posted")]
    HoldAlreadyPosted,
    #[error("hold was already voided")]
    HoldAlreadyVoided,
    #[error("void reason is longer than {MAX_REASON_CHARS} characters")]
    ReasonTooLong,
    #[error(
        "entry ids starting with {prefix:?} are reserved for entries the platform writes itself"
    )]
    ReservedEntryId { prefix: &'static str },
    /// Posting the entry (or, for a hold, posting it and every other pending hold) would move
    /// the account's balance past ±[`MAX_BALANCE_ABS`].
    #[error("the entry would move the balance of {account} past ±{MAX_BALANCE_ABS}")]
    BalanceOutOfBounds { account: AccountId },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl LedgerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Money(error) => error.is_retryable(),
            Self::TooFewPostings
            | Self::TooManyPostings
            | Self::ZeroAmountPosting { .. }
            | Self::DuplicateAccount { .. }
            | Self::PostingsDoNotBalance { .. }
            | Self::MemoTooLong
            | Self::EntryNotFound
            | Self::EntryAlreadyExistsWithDifferentContent
            | Self::EntryIsNotAHold
            | Self::HoldAlreadyPosted
            | Self::HoldAlreadyVoided
            | Self::ReasonTooLong
            | Self::ReservedEntryId { .. }
            | Self::BalanceOutOfBounds { .. } => false,
        }
    }
}

/// Checks the postings of one entry: 2..=64 postings, no zero amount, no
/// account twice, summing to exactly zero. Every posting of an entry is in
/// `currency` by construction (postings carry no currency of their own); the
/// parameter is where per-currency rules belong.
pub fn validate_postings(_currency: Currency, postings: &[Posting]) -> Result<(), LedgerError> {
    if postings.len() < MIN_POSTINGS {
        return Err(LedgerError::TooFewPostings);
    }
    if postings.len() > MAX_POSTINGS {
        return Err(LedgerError::TooManyPostings);
    }
    validate_legs(postings)?;
    let sum = postings_sum(postings);
    if sum.is_zero() {
        Ok(())
    } else {
        let sum = Money::try_from_decimal(sum)?;
        Err(LedgerError::PostingsDoNotBalance { sum })
    }
}

fn validate_legs(postings: &[Posting]) -> Result<(), LedgerError> {
    let mut seen = HashSet::with_capacity(postings.len());
    for posting in postings {
        if posting.amount.is_zero() {
            let account = posting.account.clone();
            return Err(LedgerError::ZeroAmountPosting { account });
        }
        if !seen.insert(&posting.account) {
            let account = posting.account.clone();
            return Err(LedgerError::DuplicateAccount { account });
        }
    }
    Ok(())
}

/// Exact sum, order-independent: at most 64 amounts of at most 10^15 with at
/// most 8 decimals always fit in a `Decimal`, so this cannot overflow.
fn postings_sum(postings: &[Posting]) -> Decimal {
    postings
        .iter()
        .map(|posting| posting.amount.as_decimal())
        .sum()
}

fn validate_memo(memo: &str) -> Result<(), LedgerError> {
    if memo.chars().count() > MAX_MEMO_CHARS {
        return Err(LedgerError::MemoTooLong);
    }
    Ok(())
}

fn validate_reason(reason: &str) -> Result<(), LedgerError> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(LedgerError::ReasonTooLong);
    }
    Ok(())
}

/// An account's balance in one currency as the caller looked it up before the command (from
/// the ledger read model): the posted balance (debit-positive) and the pending holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceFact {
    pub posted: Money,
    /// Sum of the debits of pending holds (non-negative).
    pub pending_debits: Money,
    /// Magnitude of the credits of pending holds (non-negative).
    pub pending_credits: Money,
}

impl Default for BalanceFact {
    /// An account without postings.
    fn default() -> Self {
        BalanceFact {
            posted: Money::ZERO,
            pending_debits: Money::ZERO,
            pending_credits: Money::ZERO,
        }
    }
}

/// The balances of the accounts an entry touches, in the entry's currency, looked up before the
/// command. An account without a fact has no postings yet (balance zero).
///
/// The facts may be stale: two entries decided at the same time are both checked against the
/// balance before either (the read model also lags the log a little). The ledger projection
/// therefore checks its sums again and refuses, with a typed error, an event that would leave
/// the bounds; see docs/ARCHITECTURE.md ("Balance bounds").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountBalances(BTreeMap<AccountId, BalanceFact>);

impl AccountBalances {
    /// No account has a balance yet.
    pub fn none() -> AccountBalances {
        AccountBalances::default()
    }

    pub fn with(mut self, account: AccountId, fact: BalanceFact) -> AccountBalances {
        self.0.insert(account, fact);
        self
    }

    pub fn insert(&mut self, account: AccountId, fact: BalanceFact) {
        self.0.insert(account, fact);
    }

    pub fn get(&self, account: &AccountId) -> BalanceFact {
        self.0.get(account).copied().unwrap_or_default()
    }
}

/// Refuses postings that could move an account past ±[`MAX_BALANCE_ABS`]. Holds count at their
/// worst: the highest the balance can reach is `posted + pending debits + this debit`, the lowest
/// `posted − pending credits − this credit`, and the pending sums themselves stay in bounds. So an
/// entry accepted here can be posted, and so can every hold accepted before it, without leaving
/// the range a [`Money`] can hold.
pub fn check_balance_bounds(
    postings: &[Posting],
    balances: &AccountBalances,
) -> Result<(), LedgerError> {
    for posting in postings {
        let fact = balances.get(&posting.account);
        let amount = posting.amount.as_decimal();
        let debit = amount.max(Decimal::ZERO);
        let credit = (-amount).max(Decimal::ZERO);
        let pending_debits = fact.pending_debits.as_decimal() + debit;
        let pending_credits = fact.pending_credits.as_decimal() + credit;
        let posted = fact.posted.as_decimal();
        let highest = posted + pending_debits;
        let lowest = posted - pending_credits;
        let within = highest <= MAX_BALANCE_ABS
            && lowest >= -MAX_BALANCE_ABS
            && pending_debits <= MAX_BALANCE_ABS
            && pending_credits <= MAX_BALANCE_ABS;
        if !within {
            let account = posting.account.clone();
            return Err(LedgerError::BalanceOutOfBounds { account });
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerCommand {
    /// Record a balanced entry that posts immediately. `balances`: the touched accounts'
    /// balances in `currency`, looked up before the command.
    Record {
        currency: Currency,
        postings: Vec<Posting>,
        memo: String,
        occurred_at: DateTime<Utc>,
        balances: AccountBalances,
    },
    /// Place a pending (two-phase) entry, to be posted or voided later.
    Hold {
        currency: Currency,
        postings: Vec<Posting>,
        memo: String,
        occurred_at: DateTime<Utc>,
        balances: AccountBalances,
    },
    PostHold {
        occurred_at: DateTime<Utc>,
    },
    VoidHold {
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

/// Journal facts. Post/void repeat currency and postings so projections are
/// plain folds over events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerEvent {
    EntryRecorded {
        currency: Currency,
        postings: Vec<Posting>,
        memo: String,
        occurred_at: DateTime<Utc>,
    },
    HoldPlaced {
        currency: Currency,
        postings: Vec<Posting>,
        memo: String,
        occurred_at: DateTime<Utc>,
    },
    HoldPosted {
        currency: Currency,
        postings: Vec<Posting>,
        occurred_at: DateTime<Utc>,
    },
    HoldVoided {
        currency: Currency,
        postings: Vec<Posting>,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for LedgerEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::EntryRecorded { .. } => "EntryRecorded",
            Self::HoldPlaced { .. } => "HoldPlaced",
            Self::HoldPosted { .. } => "HoldPosted",
            Self::HoldVoided { .. } => "HoldVoided",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// How an entry was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// `Record`: posted immediately.
    Direct,
    /// `Hold`: two-phase.
    Hold,
}

/// Lifecycle of an existing entry (a missing entry has no status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryStatus {
    Pending,
    Posted,
    Voided,
}

/// What an opening command asks for; compared on idempotent retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EntryBody {
    currency: Currency,
    postings: Vec<Posting>,
    memo: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    kind: EntryKind,
    status: EntryStatus,
    body: EntryBody,
}

/// One journal entry; the aggregate id is the caller-chosen entry id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    entry: Option<Entry>,
}

impl JournalEntry {
    /// `None` while no entry exists under this id.
    pub fn status(&self) -> Option<EntryStatus> {
        self.entry.as_ref().map(|entry| entry.status)
    }

    pub fn kind(&self) -> Option<EntryKind> {
        self.entry.as_ref().map(|entry| entry.kind)
    }

    pub fn currency(&self) -> Option<Currency> {
        self.entry.as_ref().map(|entry| entry.body.currency)
    }

    /// Empty while no entry exists.
    pub fn postings(&self) -> &[Posting] {
        self.entry
            .as_ref()
            .map_or(&[], |entry| entry.body.postings.as_slice())
    }

    pub fn memo(&self) -> Option<&str> {
        self.entry.as_ref().map(|entry| entry.body.memo.as_str())
    }

    /// The pure decision: which events `command` produces against this state.
    /// An empty list is an idempotent retry.
    pub fn decide(&self, command: LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError> {
        match command {
            LedgerCommand::Record {
                currency,
                postings,
                memo,
                occurred_at,
                balances,
            } => self.decide_open(
                EntryKind::Direct,
                EntryBody::new(currency, postings, memo),
                &balances,
                occurred_at,
            ),
            LedgerCommand::Hold {
                currency,
                postings,
                memo,
                occurred_at,
                balances,
            } => self.decide_open(
                EntryKind::Hold,
                EntryBody::new(currency, postings, memo),
                &balances,
                occurred_at,
            ),
            LedgerCommand::PostHold { occurred_at } => self.decide_post(occurred_at),
            LedgerCommand::VoidHold {
                reason,
                occurred_at,
            } => self.decide_void(reason, occurred_at),
        }
    }

    fn decide_open(
        &self,
        kind: EntryKind,
        body: EntryBody,
        balances: &AccountBalances,
        occurred_at: DateTime<Utc>,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        body.validate()?;
        match &self.entry {
            None => {
                check_balance_bounds(&body.postings, balances)?;
                Ok(vec![body.opened(kind, occurred_at)])
            }
            Some(existing) if existing.kind == kind && existing.body == body => Ok(vec![]),
            Some(_) => Err(LedgerError::EntryAlreadyExistsWithDifferentContent),
        }
    }

    fn decide_post(&self, occurred_at: DateTime<Utc>) -> Result<Vec<LedgerEvent>, LedgerError> {
        let hold = self.existing_hold()?;
        match hold.status {
            EntryStatus::Pending => Ok(vec![LedgerEvent::HoldPosted {
                currency: hold.body.currency,
                postings: hold.body.postings.clone(),
                occurred_at,
            }]),
            EntryStatus::Posted => Ok(vec![]),
            EntryStatus::Voided => Err(LedgerError::HoldAlreadyVoided),
        }
    }

    fn decide_void(
        &self,
        reason: String,
        occurred_at: DateTime<Utc>,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        validate_reason(&reason)?;
        let hold = self.existing_hold()?;
        match hold.status {
            EntryStatus::Pending => Ok(vec![LedgerEvent::HoldVoided {
                currency: hold.body.currency,
                postings: hold.body.postings.clone(),
                reason,
                occurred_at,
            }]),
            EntryStatus::Voided => Ok(vec![]),
            EntryStatus::Posted => Err(LedgerError::HoldAlreadyPosted),
        }
    }

    fn existing_hold(&self) -> Result<&Entry, LedgerError> {
        match &self.entry {
            None => Err(LedgerError::EntryNotFound),
            Some(entry) if entry.kind != EntryKind::Hold => Err(LedgerError::EntryIsNotAHold),
            Some(entry) => Ok(entry),
        }
    }

    fn open(&mut self, kind: EntryKind, status: EntryStatus, body: EntryBody) {
        assert!(
            postings_sum(&body.postings).is_zero(),
            "corrupt event stream: opened an entry whose postings do not sum to zero",
        );
        self.entry = Some(Entry { kind, status, body });
    }

    fn set_status(&mut self, status: EntryStatus) {
        match self.entry.as_mut() {
            Some(entry) if entry.kind == EntryKind::Hold => entry.status = status,
            _ => panic!("corrupt event stream: hold became {status:?} but was never placed"),
        }
    }
}

impl EntryBody {
    fn new(currency: Currency, postings: Vec<Posting>, memo: String) -> EntryBody {
        EntryBody {
            currency,
            postings,
            memo,
        }
    }

    fn validate(&self) -> Result<(), LedgerError> {
        validate_postings(self.currency, &self.postings)?;
        validate_memo(&self.memo)
    }

    fn opened(self, kind: EntryKind, occurred_at: DateTime<Utc>) -> LedgerEvent {
        let EntryBody {
            currency,
            postings,
            memo,
        } = self;
        match kind {
            EntryKind::Direct => LedgerEvent::EntryRecorded {
                currency,
                postings,
                memo,
                occurred_at,
            },
            EntryKind::Hold => LedgerEvent::HoldPlaced {
                currency,
                postings,
                memo,
                occurred_at,
            },
        }
    }
}

impl Aggregate for JournalEntry {
    const TYPE: &'static str = "journal_entry";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = LedgerError;
    type Services = ();

    /// Delegates to [`JournalEntry::decide`]; writing to the sink applies.
    async fn handle(
        &mut self,
        command: LedgerCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), LedgerError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    /// Panics on an unbalanced opening event or a post/void without a
    /// placed hold: such a stored stream is corruption, not a business case.
    fn apply(&mut self, event: LedgerEvent) {
        match event {
            LedgerEvent::EntryRecorded {
                currency,
                postings,
                memo,
                ..
            } => {
                let body = EntryBody::new(currency, postings, memo);
                self.open(EntryKind::Direct, EntryStatus::Posted, body);
            }
            LedgerEvent::HoldPlaced {
                currency,
                postings,
                memo,
                ..
            } => {
                let body = EntryBody::new(currency, postings, memo);
                self.open(EntryKind::Hold, EntryStatus::Pending, body);
            }
            LedgerEvent::HoldPosted { .. } => self.set_status(EntryStatus::Posted),
            LedgerEvent::HoldVoided { .. } => self.set_status(EntryStatus::Voided),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Journal = TestFramework<JournalEntry>;

    fn at(minute: u32) -> DateTime<Utc> {
        format!("2025-01-02T03:{minute:02}:00Z").parse().unwrap()
    }

    fn account(id: &str) -> AccountId {
        AccountId::parse(id).unwrap()
    }

    fn posting(id: &str, amount: &str) -> Posting {
        Posting::new(account(id), Money::parse(amount).unwrap())
    }

    /// Buyer pays 10.00: seller gets 9.50, the platform 0.50.
    fn sale() -> Vec<Posting> {
        vec![
            posting("platform:funding", "10.00"),
            posting("seller:s-42:payable", "-9.50"),
            posting("platform:revenue", "-0.50"),
        ]
    }

    fn usd() -> Currency {
        Currency::usd()
    }

    fn record(postings: Vec<Posting>, memo: &str, minute: u32) -> LedgerCommand {
        LedgerCommand::Record {
            currency: usd(),
            postings,
            memo: memo.to_owned(),
            occurred_at: at(minute),
            balances: AccountBalances::none(),
        }
    }

    fn hold(postings: Vec<Posting>, memo: &str, minute: u32) -> LedgerCommand {
        LedgerCommand::Hold {
            currency: usd(),
            postings,
            memo: memo.to_owned(),
            occurred_at: at(minute),
            balances: AccountBalances::none(),
        }
    }

    fn recorded(minute: u32) -> LedgerEvent {
        LedgerEvent::EntryRecorded {
            currency: usd(),
            postings: sale(),
            memo: "order o-1".to_owned(),
            occurred_at: at(minute),
        }
    }

    fn placed(minute: u32) -> LedgerEvent {
        LedgerEvent::HoldPlaced {
            currency: usd(),
            postings: sale(),
            memo: "order o-1".to_owned(),
            occurred_at: at(minute),
        }
    }

    fn posted(minute: u32) -> LedgerEvent {
        LedgerEvent::HoldPosted {
            currency: usd(),
            postings: sale(),
            occurred_at: at(minute),
        }
    }

    fn voided(reason: &str, minute: u32) -> LedgerEvent {
        LedgerEvent::HoldVoided {
            currency: usd(),
            postings: sale(),
            reason: reason.to_owned(),
            occurred_at: at(minute),
        }
    }

    fn post_hold(minute: u32) -> LedgerCommand {
        LedgerCommand::PostHold {
            occurred_at: at(minute),
        }
    }

    fn void_hold(reason: &str, minute: u32) -> LedgerCommand {
        LedgerCommand::VoidHold {
            reason: reason.to_owned(),
            occurred_at: at(minute),
        }
    }

    fn expect_record_error(postings: Vec<Posting>, error: LedgerError) {
        Journal::with(())
            .given_no_previous_events()
            .when(record(postings.clone(), "m", 0))
            .then_expect_error(error.clone());
        Journal::with(())
            .given_no_previous_events()
            .when(hold(postings, "m", 0))
            .then_expect_error(error);
    }

    fn applied(events: Vec<LedgerEvent>) -> JournalEntry {
        let mut entry = JournalEntry::default();
        events.into_iter().for_each(|event| entry.apply(event));
        entry
    }

    // --- opening an entry -------------------------------------------------

    #[test]
    fn record_on_a_fresh_entry_records_it() {
        Journal::with(())
            .given_no_previous_events()
            .when(record(sale(), "order o-1", 1))
            .then_expect_events(vec![recorded(1)]);
    }

    #[test]
    fn hold_on_a_fresh_entry_places_it() {
        Journal::with(())
            .given_no_previous_events()
            .when(hold(sale(), "order o-1", 1))
            .then_expect_events(vec![placed(1)]);
    }

    #[test]
    fn retried_record_with_identical_content_is_a_no_op() {
        Journal::with(())
            .given(vec![recorded(1)])
            .when(record(sale(), "order o-1", 9))
            .then_expect_events(vec![]);
    }

    #[test]
    fn retried_hold_with_identical_content_is_a_no_op_in_every_state() {
        for history in [
            vec![placed(1)],
            vec![placed(1), posted(2)],
            vec![placed(1), voided("x", 2)],
        ] {
            Journal::with(())
                .given(history)
                .when(hold(sale(), "order o-1", 9))
                .then_expect_events(vec![]);
        }
    }

    #[test]
    fn record_with_different_postings_is_rejected() {
        let mut postings = sale();
        postings.reverse();
        Journal::with(())
            .given(vec![recorded(1)])
            .when(record(postings, "order o-1", 1))
            .then_expect_error(LedgerError::EntryAlreadyExistsWithDifferentContent);
    }

    #[test]
    fn record_with_different_memo_is_rejected() {
        Journal::with(())
            .given(vec![recorded(1)])
            .when(record(sale(), "order o-2", 1))
            .then_expect_error(LedgerError::EntryAlreadyExistsWithDifferentContent);
    }

    #[test]
    fn record_with_different_currency_is_rejected() {
        let command = LedgerCommand::Record {
            currency: Currency::parse("EUR").unwrap(),
            postings: sale(),
            memo: "order o-1".to_owned(),
            occurred_at: at(1),
            balances: AccountBalances::none(),
        };
        Journal::with(())
            .given(vec![recorded(1)])
            .when(command)
            .then_expect_error(LedgerError::EntryAlreadyExistsWithDifferentContent);
    }

    #[test]
    fn record_over_an_identical_hold_is_rejected() {
        Journal::with(())
            .given(vec![placed(1)])
            .when(record(sale(), "order o-1", 1))
            .then_expect_error(LedgerError::EntryAlreadyExistsWithDifferentContent);
    }

    #[test]
    fn hold_over_an_identical_recorded_entry_is_rejected() {
        Journal::with(())
            .given(vec![recorded(1)])
            .when(hold(sale(), "order o-1", 1))
            .then_expect_error(LedgerError::EntryAlreadyExistsWithDifferentContent);
    }

    // --- posting validation -------------------------------------------------

    #[test]
    fn fewer_than_two_postings_are_rejected() {
        expect_record_error(vec![], LedgerError::TooFewPostings);
        expect_record_error(vec![posting("a", "1")], LedgerError::TooFewPostings);
    }

    fn balanced(count: usize) -> Vec<Posting> {
        let mut postings: Vec<Posting> = (1..count)
            .map(|i| posting(&format!("user:u{i}:wallet"), "1"))
            .collect();
        let total = format!("-{}", count - 1);
        postings.push(posting("platform:funding", &total));
        postings
    }

    #[test]
    fn at_most_sixty_four_postings_are_accepted() {
        Journal::with(())
            .given_no_previous_events()
            .when(record(balanced(MAX_POSTINGS), "big", 1))
            .inspect_result()
            .unwrap();
        expect_record_error(balanced(MAX_POSTINGS + 1), LedgerError::TooManyPostings);
    }

    #[test]
    fn zero_amount_postings_are_rejected() {
        let mut postings = sale();
        postings.push(posting("tenant:acme:prepaid", "0.00"));
        let account = account("tenant:acme:prepaid");
        expect_record_error(postings, LedgerError::ZeroAmountPosting { account });
    }

    #[test]
    fn an_account_may_appear_only_once_per_entry() {
        let postings = vec![
            posting("platform:funding", "10"),
            posting("platform:revenue", "-4"),
            posting("platform:revenue", "-6"),
        ];
        let account = account("platform:revenue");
        expect_record_error(postings, LedgerError::DuplicateAccount { account });
    }

    #[test]
    fn unbalanced_postings_are_rejected_with_their_sum() {
        let postings = vec![posting("a", "10.00"), posting("b", "-9.99999999")];
        let sum = Money::parse("0.00000001").unwrap();
        expect_record_error(postings, LedgerError::PostingsDoNotBalance { sum });
    }

    #[test]
    fn balance_check_does_not_depend_on_posting_order() {
        let max = "1000000000000000";
        let neg = "-1000000000000000";
        let postings = vec![
            posting("a", max),
            posting("b", max),
            posting("c", neg),
            posting("d", neg),
        ];
        assert_eq!(validate_postings(usd(), &postings), Ok(()));
    }

    #[test]
    fn an_imbalance_too_large_for_money_is_reported_as_out_of_range() {
        let max = "1000000000000000";
        let postings = vec![posting("a", max), posting("b", max)];
        let error = LedgerError::Money(MoneyError::OutOfRange);
        assert_eq!(validate_postings(usd(), &postings), Err(error));
    }

    #[test]
    fn amounts_may_use_up_to_eight_decimals() {
        let postings = vec![posting("a", "0.00000001"), posting("b", "-0.00000001")];
        assert_eq!(validate_postings(usd(), &postings), Ok(()));
    }

    #[test]
    fn memo_is_limited_to_five_hundred_characters() {
        let longest = "é".repeat(MAX_MEMO_CHARS);
        Journal::with(())
            .given_no_previous_events()
            .when(record(sale(), &longest, 1))
            .inspect_result()
            .unwrap();
        let too_long = "a".repeat(MAX_MEMO_CHARS + 1);
        Journal::with(())
            .given_no_previous_events()
            .when(hold(sale(), &too_long, 1))
            .then_expect_error(LedgerError::MemoTooLong);
    }

    // --- balance bounds ------------------------------------------------------

    const LIMIT: &str = "1000000000000000";

    fn posted_at(amount: &str) -> BalanceFact {
        BalanceFact {
            posted: Money::parse(amount).unwrap(),
            ..BalanceFact::default()
        }
    }

    fn near_limit() -> Vec<Posting> {
        vec![
            posting("platform:funding", "600000000000000"),
            posting("seller:s-1:payable", "-600000000000000"),
        ]
    }

    fn with_balances(command: LedgerCommand, facts: AccountBalances) -> LedgerCommand {
        match command {
            LedgerCommand::Record {
                currency,
                postings,
                memo,
                occurred_at,
                ..
            } => LedgerCommand::Record {
                currency,
                postings,
                memo,
                occurred_at,
                balances: facts,
            },
            LedgerCommand::Hold {
                currency,
                postings,
                memo,
                occurred_at,
                ..
            } => LedgerCommand::Hold {
                currency,
                postings,
                memo,
                occurred_at,
                balances: facts,
            },
            other => other,
        }
    }

    #[test]
    fn a_second_entry_near_the_limit_is_refused_for_the_account_it_would_overflow() {
        // The first entry of 6 * 10^14 was recorded: the next one would take funding to 1.2 * 10^15.
        let facts = AccountBalances::none()
            .with(account("platform:funding"), posted_at("600000000000000"))
            .with(account("seller:s-1:payable"), posted_at("-600000000000000"));
        let account = account("platform:funding");
        for command in [record(near_limit(), "m", 1), hold(near_limit(), "m", 1)] {
            Journal::with(())
                .given_no_previous_events()
                .when(with_balances(command, facts.clone()))
                .then_expect_error(LedgerError::BalanceOutOfBounds {
                    account: account.clone(),
                });
        }
    }

    #[test]
    fn an_entry_that_lands_exactly_on_the_limit_is_accepted() {
        let facts = AccountBalances::none()
            .with(account("platform:funding"), posted_at("400000000000000"))
            .with(account("seller:s-1:payable"), posted_at("-400000000000000"));
        let command = with_balances(record(near_limit(), "m", 1), facts);
        let events = JournalEntry::default().decide(command).unwrap();
        assert_eq!(events.len(), 1);
        let full = vec![posting("a", LIMIT), posting("b", &format!("-{LIMIT}"))];
        assert_eq!(
            check_balance_bounds(&full, &AccountBalances::none()),
            Ok(())
        );
    }

    #[test]
    fn pending_holds_count_at_their_worst() {
        // Posted 0, but a pending hold of 6 * 10^14 on the credit side of the payable: another
        // credit of 6 * 10^14 could overflow once both post.
        let held = BalanceFact {
            pending_credits: Money::parse("600000000000000").unwrap(),
            ..BalanceFact::default()
        };
        let facts = AccountBalances::none().with(account("seller:s-1:payable"), held);
        Journal::with(())
            .given_no_previous_events()
            .when(with_balances(hold(near_limit(), "m", 1), facts))
            .then_expect_error(LedgerError::BalanceOutOfBounds {
                account: account("seller:s-1:payable"),
            });
    }

    #[test]
    fn a_retried_entry_is_not_refused_by_its_own_balance() {
        let entry = vec![
            posting("platform:funding", LIMIT),
            posting("seller:s-1:payable", &format!("-{LIMIT}")),
        ];
        let first = LedgerEvent::EntryRecorded {
            currency: usd(),
            postings: entry.clone(),
            memo: "m".to_owned(),
            occurred_at: at(1),
        };
        let facts = AccountBalances::none()
            .with(account("platform:funding"), posted_at(LIMIT))
            .with(
                account("seller:s-1:payable"),
                posted_at(&format!("-{LIMIT}")),
            );
        Journal::with(())
            .given(vec![first])
            .when(with_balances(record(entry, "m", 2), facts))
            .then_expect_events(vec![]);
    }

    // --- system namespaces ---------------------------------------------------

    #[test]
    fn client_entry_ids_in_system_namespaces_are_refused() {
        for prefix in SYSTEM_ENTRY_PREFIXES {
            let id = format!("{prefix}x");
            assert_eq!(
                check_client_entry_id(&id),
                Err(LedgerError::ReservedEntryId { prefix })
            );
        }
        assert_eq!(check_client_entry_id("order-1"), Ok(()));
        assert_eq!(check_client_entry_id("my-logpay-1"), Ok(()));
        assert_eq!(system_namespace("lvrefund-w1"), Some("lvrefund-"));
        assert!(SYSTEM_ENTRY_PREFIXES.contains(&LOG_PAYMENT_ENTRY_PREFIX));
    }

    // --- posting a hold ----------------------------------------------------

    #[test]
    fn posting_a_pending_hold_posts_it_with_its_facts() {
        Journal::with(())
            .given(vec![placed(1)])
            .when(post_hold(2))
            .then_expect_events(vec![posted(2)]);
    }

    #[test]
    fn posting_a_posted_hold_again_is_a_no_op() {
        Journal::with(())
            .given(vec![placed(1), posted(2)])
            .when(post_hold(3))
            .then_expect_events(vec![]);
    }

    #[test]
    fn posting_a_voided_hold_is_rejected() {
        Journal::with(())
            .given(vec![placed(1), voided("cancelled", 2)])
            .when(post_hold(3))
            .then_expect_error(LedgerError::HoldAlreadyVoided);
    }

    #[test]
    fn posting_a_recorded_entry_is_rejected() {
        Journal::with(())
            .given(vec![recorded(1)])
            .when(post_hold(2))
            .then_expect_error(LedgerError::EntryIsNotAHold);
    }

    #[test]
    fn posting_a_missing_entry_is_rejected() {
        Journal::with(())
            .given_no_previous_events()
            .when(post_hold(2))
            .then_expect_error(LedgerError::EntryNotFound);
    }

    // --- voiding a hold ----------------------------------------------------

    #[test]
    fn voiding_a_pending_hold_voids_it_with_its_facts() {
        Journal::with(())
            .given(vec![placed(1)])
            .when(void_hold("buyer cancelled", 2))
            .then_expect_events(vec![voided("buyer cancelled", 2)]);
    }

    #[test]
    fn voiding_a_voided_hold_again_is_a_no_op() {
        Journal::with(())
            .given(vec![placed(1), voided("buyer cancelled", 2)])
            .when(void_hold("retry", 3))
            .then_expect_events(vec![]);
    }

    #[test]
    fn voiding_a_posted_hold_is_rejected() {
        Journal::with(())
            .given(vec![placed(1), posted(2)])
            .when(void_hold("too late", 3))
            .then_expect_error(LedgerError::HoldAlreadyPosted);
    }

    #[test]
    fn voiding_a_recorded_entry_is_rejected() {
        Journal::with(())
            .given(vec![recorded(1)])
            .when(void_hold("nope", 2))
            .then_expect_error(LedgerError::EntryIsNotAHold);
    }

    #[test]
    fn voiding_a_missing_entry_is_rejected() {
        Journal::with(())
            .given_no_previous_events()
            .when(void_hold("nope", 2))
            .then_expect_error(LedgerError::EntryNotFound);
    }

    #[test]
    fn void_reason_is_limited_to_five_hundred_characters() {
        let longest = "ü".repeat(MAX_REASON_CHARS);
        Journal::with(())
            .given(vec![placed(1)])
            .when(void_hold(&longest, 2))
            .then_expect_events(vec![voided(&longest, 2)]);
        let too_long = "a".repeat(MAX_REASON_CHARS + 1);
        Journal::with(())
            .given(vec![placed(1)])
            .when(void_hold(&too_long, 2))
            .then_expect_error(LedgerError::ReasonTooLong);
    }

    // --- handle, apply and state -------------------------------------------

    #[tokio::test]
    async fn handle_writes_exactly_what_decide_returns() {
        let entry = applied(vec![placed(1)]);
        let decided = entry.decide(post_hold(2)).unwrap();
        let result = Journal::with(())
            .given(vec![placed(1)])
            .when_async(post_hold(2))
            .await
            .inspect_result();
        assert_eq!(result, Ok(decided));
    }

    #[test]
    fn applying_events_tracks_kind_status_and_content() {
        assert_eq!(JournalEntry::default().status(), None);
        assert!(JournalEntry::default().postings().is_empty());
        let direct = applied(vec![recorded(1)]);
        assert_eq!(direct.kind(), Some(EntryKind::Direct));
        assert_eq!(direct.status(), Some(EntryStatus::Posted));
        assert_eq!(direct.currency(), Some(usd()));
        assert_eq!(direct.postings(), sale().as_slice());
        assert_eq!(direct.memo(), Some("order o-1"));
        let held = applied(vec![placed(1)]);
        assert_eq!(
            (held.kind(), held.status()),
            (Some(EntryKind::Hold), Some(EntryStatus::Pending))
        );
        let done = applied(vec![placed(1), posted(2)]);
        assert_eq!(done.status(), Some(EntryStatus::Posted));
        let undone = applied(vec![placed(1), voided("x", 2)]);
        assert_eq!(undone.status(), Some(EntryStatus::Voided));
    }

    fn unbalanced() -> Vec<Posting> {
        vec![posting("a", "10"), posting("b", "-9")]
    }

    #[test]
    #[should_panic(expected = "do not sum to zero")]
    fn applying_an_unbalanced_recorded_entry_panics() {
        applied(vec![LedgerEvent::EntryRecorded {
            currency: usd(),
            postings: unbalanced(),
            memo: String::new(),
            occurred_at: at(1),
        }]);
    }

    #[test]
    #[should_panic(expected = "do not sum to zero")]
    fn applying_an_unbalanced_hold_panics() {
        applied(vec![LedgerEvent::HoldPlaced {
            currency: usd(),
            postings: unbalanced(),
            memo: String::new(),
            occurred_at: at(1),
        }]);
    }

    #[test]
    #[should_panic(expected = "never placed")]
    fn applying_a_post_without_a_hold_panics() {
        applied(vec![posted(1)]);
    }

    #[test]
    #[should_panic(expected = "never placed")]
    fn applying_a_void_to_a_recorded_entry_panics() {
        applied(vec![recorded(1), voided("x", 2)]);
    }

    #[test]
    fn aggregate_state_round_trips_through_serde() {
        let entry = applied(vec![placed(1), posted(2)]);
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(serde_json::from_str::<JournalEntry>(&json).unwrap(), entry);
    }

    // --- events --------------------------------------------------------------

    #[test]
    fn events_are_named_after_their_variant_at_version_one() {
        let names: Vec<String> = [recorded(1), placed(1), posted(1), voided("x", 1)]
            .iter()
            .map(DomainEvent::event_type)
            .collect();
        assert_eq!(
            names,
            ["EntryRecorded", "HoldPlaced", "HoldPosted", "HoldVoided"]
        );
        assert_eq!(recorded(1).event_version(), "1.0");
        assert_eq!(JournalEntry::TYPE, "journal_entry");
    }

    #[test]
    fn events_serialize_externally_tagged_with_string_amounts() {
        let json = serde_json::to_value(posted(1)).unwrap();
        let expected = serde_json::json!({
            "HoldPosted": {
                "currency": "USD",
                "postings": [
                    { "account": "platform:funding", "amount": "10.00" },
                    { "account": "seller:s-42:payable", "amount": "-9.50" },
                    { "account": "platform:revenue", "amount": "-0.50" }
                ],
                "occurred_at": "2025-01-02T03:01:00Z"
            }
        });
        assert_eq!(json, expected);
        assert_eq!(
            serde_json::from_value::<LedgerEvent>(json).unwrap(),
            posted(1)
        );
    }

    #[test]
    fn ledger_errors_are_not_retryable() {
        let errors = [
            LedgerError::TooFewPostings,
            LedgerError::TooManyPostings,
            LedgerError::ZeroAmountPosting {
                account: account("a"),
            },
            LedgerError::DuplicateAccount {
                account: account("a"),
            },
            LedgerError::PostingsDoNotBalance { sum: Money::ZERO },
            LedgerError::MemoTooLong,
            LedgerError::EntryNotFound,
            LedgerError::EntryAlreadyExistsWithDifferentContent,
            LedgerError::EntryIsNotAHold,
            LedgerError::HoldAlreadyPosted,
            LedgerError::HoldAlreadyVoided,
            LedgerError::ReasonTooLong,
            LedgerError::ReservedEntryId { prefix: "logpay-" },
            LedgerError::BalanceOutOfBounds {
                account: account("a"),
            },
            LedgerError::Money(MoneyError::Overflow),
        ];
        assert!(errors.iter().all(|error| !error.is_retryable()));
        assert!(!AccountIdError::Empty.is_retryable());
    }

    // --- account ids ---------------------------------------------------------

    #[test]
    fn account_ids_accept_lowercase_segments() {
        for id in [
            "platform:revenue",
            "seller:s-42:payable",
            "tenant:acme:prepaid",
            "a",
            "x_1-y",
        ] {
            assert_eq!(account(id).as_str(), id);
            assert_eq!(account(id).to_string(), id);
        }
        let longest = "a".repeat(MAX_ACCOUNT_ID_LEN);
        assert_eq!(AccountId::parse(&longest).map(String::from), Ok(longest));
    }

    #[test]
    fn account_ids_reject_malformed_input() {
        use AccountIdError::*;
        let cases = [
            ("", Empty),
            (":a", EmptySegment),
            ("a:", EmptySegment),
            ("a::b", EmptySegment),
            (":", EmptySegment),
            ("Platform:revenue", InvalidCharacter { character: 'P' }),
            ("platform revenue", InvalidCharacter { character: ' ' }),
            ("platform.revenue", InvalidCharacter { character: '.' }),
            ("café", InvalidCharacter { character: 'é' }),
        ];
        for (input, error) in cases {
            assert_eq!(AccountId::parse(input), Err(error), "input {input:?}");
        }
        let too_long = "a".repeat(MAX_ACCOUNT_ID_LEN + 1);
        assert_eq!(AccountId::parse(&too_long), Err(TooLong));
    }

    #[test]
    fn well_known_accounts() {
        assert_eq!(
            AccountId::marketplace_funding(),
            account("platform:funding")
        );
        assert_eq!(AccountId::platform_revenue(), account("platform:revenue"));
        assert_eq!(
            AccountId::seller_payable("s-42"),
            Ok(account("seller:s-42:payable"))
        );
    }

    #[test]
    fn seller_payable_requires_a_single_valid_segment() {
        let colon = AccountIdError::InvalidCharacter { character: ':' };
        assert_eq!(AccountId::seller_payable("a:b"), Err(colon));
        assert_eq!(
            AccountId::seller_payable(""),
            Err(AccountIdError::EmptySegment)
        );
        let upper = AccountIdError::InvalidCharacter { character: 'S' };
        assert_eq!(AccountId::seller_payable("S1"), Err(upper));
        let too_long = "a".repeat(MAX_ACCOUNT_ID_LEN);
        assert_eq!(
            AccountId::seller_payable(&too_long),
            Err(AccountIdError::TooLong)
        );
    }

    #[test]
    fn account_id_serde_validates() {
        let json = serde_json::to_string(&account("platform:revenue")).unwrap();
        assert_eq!(json, r#""platform:revenue""#);
        let back: AccountId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, account("platform:revenue"));
        assert!(serde_json::from_str::<AccountId>(r#""Platform""#).is_err());
        assert!(serde_json::from_str::<AccountId>("42").is_err());
    }
}

//! Anonymisation of an execution's personal data, before it is stored (DESIGN.md §9 then
//! encrypts what remains per data subject).

use std::borrow::Cow;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::logmarket::redact::redact;

/// Longest raw user agent accepted, in bytes.
pub const MAX_USER_AGENT_BYTES: usize = 1_024;
/// Longest stored error message, in characters (after redaction).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1_000;
/// Bits of an IPv4 address kept (the seed's "first 3 octets").
pub const IPV4_PREFIX_BITS: u8 = 24;
/// Bits of an IPv6 address kept (a site).
pub const IPV6_PREFIX_BITS: u8 = 48;

/// Why a value could not be anonymised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnonymiseError {
    #[error("not an IPv4 or IPv6 address")]
    NotAnIp,
    #[error("longer than {max} bytes")]
    TooLong { max: usize },
}

/// The network an address belongs to, in CIDR notation: `203.0.113.0/24`, `2001:db8:1::/48`.
/// An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is treated as the IPv4 address.
pub fn ip_prefix(raw: &str) -> Result<String, AnonymiseError> {
    let addr: IpAddr = raw.trim().parse().map_err(|_| AnonymiseError::NotAnIp)?;
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    Ok(match addr {
        IpAddr::V4(v4) => {
            let masked = u32::from(v4) & (u32::MAX << (32 - IPV4_PREFIX_BITS));
            format!("{}/{IPV4_PREFIX_BITS}", std::net::Ipv4Addr::from(masked))
        }
        IpAddr::V6(v6) => {
            let masked = u128::from(v6) & (u128::MAX << (128 - IPV6_PREFIX_BITS));
            format!("{}/{IPV6_PREFIX_BITS}", std::net::Ipv6Addr::from(masked))
        }
    })
}

/// A user agent reduced to what analytics need: no build numbers, no device model, no
/// extensions or identifiers a raw string may carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAgent {
    /// `Chrome`, `Firefox`, `curl`, … or `other`.
    pub family: String,
    /// The major version (digits only), when known.
    pub major: Option<String>,
    /// The operating system's family (`Windows 10`, `Mac OSX`, `Linux`, …), when known.
    pub os: Option<String>,
    /// `pc`, `smartphone`, `mobilephone`, `crawler`, `appliance`, `misc` or `other`.
    pub category: String,
}

/// Characters a reduced name keeps (anything else becomes `_`), and its longest length.
fn tidy(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reduces a raw user agent with the `woothee` parser; an unrecognised one is `other`.
pub fn client_agent(raw: &str) -> Result<ClientAgent, AnonymiseError> {
    if raw.len() > MAX_USER_AGENT_BYTES {
        return Err(AnonymiseError::TooLong {
            max: MAX_USER_AGENT_BYTES,
        });
    }
    let known = |s: &str| !s.is_empty() && s != "UNKNOWN";
    let parsed = woothee::parser::Parser::new().parse(raw.trim());
    Ok(match parsed {
        Some(r) if known(r.name) => {
            let major: String = r
                .version
                .split('.')
                .next()
                .unwrap_or_default()
                .chars()
                .take_while(char::is_ascii_digit)
                .take(6)
                .collect();
            ClientAgent {
                family: tidy(r.name, 40),
                major: (!major.is_empty()).then_some(major),
                os: known(r.os).then(|| tidy(r.os, 40)),
                category: tidy(r.category, 20),
            }
        }
        _ => ClientAgent {
            family: "other".into(),
            major: None,
            os: None,
            category: "other".into(),
        },
    })
}

/// Home directories name their user: `/home/alice/…`, `/Users/alice/…`, `C:\Users\alice\…`.
fn home_dirs() -> &'static regex::Regex {
    static HOME: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        regex::Regex::new(r"(?i)(/home/|/Users/|[A-Z]:\\Users\\)[^/\\\s:]+")
            .expect("a valid pattern")
    })
}

/// An error message as stored: secrets, e-mails and addresses redacted (the marketplace's
/// redaction), home directories reduced to `~`, control characters removed, at most
/// [`MAX_ERROR_MESSAGE_CHARS`].
pub fn sanitise_message(raw: &str) -> String {
    let redacted: Cow<'_, str> = redact(raw);
    let redacted = home_dirs().replace_all(&redacted, "~");
    let mut out: String = redacted
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .take(MAX_ERROR_MESSAGE_CHARS)
        .collect();
    if redacted.chars().count() > MAX_ERROR_MESSAGE_CHARS {
        out.push('…');
    }
    out.trim().to_owned()
}

#[cfg(test)]
#[path = "anonymise_tests.rs"]
mod tests;

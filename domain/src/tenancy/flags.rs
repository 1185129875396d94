//! Feature flags with a gradual, sticky percentage rollout, as Unleash's
//! "gradual rollout" strategy does it.
//!
//! A targeting key (a tenant, a user) falls in a bucket from 1 to 100:
//!
//! ```text
//! bucket = murmur3_x86_32("{group_id}:{key}", seed 0) % 100 + 1
//! ```
//!
//! and the flag is on for it when the flag is enabled and
//! `bucket ≤ rollout_percent`. So 0 % is never on, 100 % always on, the same
//! key always gets the same answer for the same group, raising the
//! percentage never turns a key off (monotone), and flags sharing a
//! `group_id` roll out to the same keys first. Any string is a key, the empty
//! one included.
//!
//! [`murmur3_32`] is MurmurHash3 x86_32 (Austin Appleby, public domain),
//! implemented here and checked against the published test vectors.

use serde::{Deserialize, Serialize};

/// Number of rollout buckets: rollout is in whole percent.
pub const BUCKETS: u32 = 100;

/// Seed of the rollout hash (Unleash uses 0).
pub const ROLLOUT_SEED: u32 = 0;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

fn mix_block(mut k: u32) -> u32 {
    k = k.wrapping_mul(C1);
    k = k.rotate_left(15);
    k.wrapping_mul(C2)
}

fn final_mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3 x86_32 of `data` with `seed`.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= mix_block(k);
        h = h.rotate_left(13);
        h = h.wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, &byte| (k << 8) | u32::from(byte));
        h ^= mix_block(k);
    }
    // The algorithm mixes in the length modulo 2^32.
    h ^= data.len() as u32;
    final_mix(h)
}

/// The key's bucket, 1..=100, for flags of `group_id`.
pub fn rollout_bucket(group_id: &str, key: &str) -> u32 {
    let input = format!("{group_id}:{key}");
    murmur3_32(input.as_bytes(), ROLLOUT_SEED) % BUCKETS + 1
}

/// Why a flag setting was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("rollout percentage must be 0..=100, got {percent}")]
    RolloutPercentOutOfRange { percent: u32 },
}

impl FlagError {
    /// About the input itself: retrying cannot help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RolloutPercentOutOfRange { .. } => false,
        }
    }
}

/// A whole percentage, 0..=100.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct RolloutPercent(u32);

impl RolloutPercent {
    pub const NONE: RolloutPercent = RolloutPercent(0);
    pub const ALL: RolloutPercent = RolloutPercent(BUCKETS);

    pub fn try_new(percent: u32) -> Result<Self, FlagError> {
        if percent > BUCKETS {
            return Err(FlagError::RolloutPercentOutOfRange { percent });
        }
        Ok(Self(percent))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for RolloutPercent {
    type Error = FlagError;

    fn try_from(percent: u32) -> Result<Self, Self::Error> {
        Self::try_new(percent)
    }
}

impl From<RolloutPercent> for u32 {
    fn from(percent: RolloutPercent) -> u32 {
        percent.0
    }
}

/// A flag's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlagState {
    /// Master switch: a disabled flag is off for every key.
    pub enabled: bool,
    pub rollout_percent: RolloutPercent,
    /// Stickiness group; Unleash defaults it to the flag's name.
    pub group_id: String,
}

impl FlagState {
    /// Is the flag on for this targeting key?
    pub fn is_enabled_for(&self, key: &str) -> bool {
        if !self.enabled {
            return false;
        }
        match self.rollout_percent.get() {
            0 => false,
            BUCKETS => true,
            percent => rollout_bucket(&self.group_id, key) <= percent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(percent: u32) -> FlagState {
        FlagState {
            enabled: true,
            rollout_percent: RolloutPercent::try_new(percent).expect("0..=100"),
            group_id: "new-scoring".to_owned(),
        }
    }

    fn keys() -> impl Iterator<Item = String> {
        (0..10_000).map(|i| format!("tenant-{i}"))
    }

    #[test]
    fn murmur3_matches_the_published_vectors() {
        let vectors: [(&[u8], u32, u32); 17] = [
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"hello", 0, 0x248b_fa47),
            (b"aaaa", 0x9747_b28c, 0x5a97_808a),
            (b"aaa", 0x9747_b28c, 0x283e_0130),
            (b"aa", 0x9747_b28c, 0x5d21_1726),
            (b"a", 0x9747_b28c, 0x7fa0_9ea6),
            (b"abcd", 0x9747_b28c, 0xf047_8627),
            (b"abc", 0x9747_b28c, 0xc84a_62dd),
            (b"ab", 0x9747_b28c, 0x7487_5592),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
            (b"abc", 0, 0xb3dd_93fa),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                0,
                0xee92_5b90,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
            ("ππππππππ".as_bytes(), 0x9747_b28c, 0xd580_63c1),
        ];
        for (input, seed, expected) in vectors {
            assert_eq!(murmur3_32(input, seed), expected, "input {input:?}");
        }
        assert_eq!(murmur3_32(&[b'a'; 256], 0x9747_b28c), 0x3740_5bdc);
    }

    #[test]
    fn buckets_match_unleash() {
        // The values Unleash's Node client pins for its normalizedHash.
        assert_eq!(rollout_bucket("gr1", "123"), 73);
        assert_eq!(rollout_bucket("groupX", "999"), 25);
    }

    #[test]
    fn buckets_are_one_to_a_hundred_and_stable() {
        for key in keys() {
            let bucket = rollout_bucket("g", &key);
            assert!((1..=BUCKETS).contains(&bucket));
            assert_eq!(rollout_bucket("g", &key), bucket);
        }
    }

    #[test]
    fn zero_percent_is_never_on_and_a_hundred_always() {
        assert!(keys().all(|key| !flag(0).is_enabled_for(&key)));
        assert!(keys().all(|key| flag(100).is_enabled_for(&key)));
    }

    #[test]
    fn a_disabled_flag_is_off_for_everyone() {
        let off = FlagState {
            enabled: false,
            ..flag(100)
        };
        assert!(keys().all(|key| !off.is_enabled_for(&key)));
    }

    #[test]
    fn ten_percent_enables_ten_percent_of_keys_give_or_take_one() {
        let on = keys().filter(|key| flag(10).is_enabled_for(key)).count();
        assert!((900..=1_100).contains(&on), "{on} of 10000 keys enabled");
    }

    #[test]
    fn raising_the_percentage_never_turns_a_key_off() {
        let flags: Vec<FlagState> = (0..=BUCKETS).map(flag).collect();
        for key in keys() {
            let states: Vec<bool> = flags.iter().map(|f| f.is_enabled_for(&key)).collect();
            assert!(
                states.windows(2).all(|pair| pair[0] <= pair[1]),
                "key {key} turned off as the rollout grew"
            );
        }
    }

    #[test]
    fn groups_roll_out_to_different_keys() {
        let other = FlagState {
            group_id: "other-group".to_owned(),
            ..flag(50)
        };
        let differ = keys()
            .filter(|key| flag(50).is_enabled_for(key) != other.is_enabled_for(key))
            .count();
        assert!(differ > 0);
    }

    #[test]
    fn rollout_percent_is_zero_to_a_hundred() {
        assert_eq!(RolloutPercent::try_new(100), Ok(RolloutPercent::ALL));
        assert_eq!(
            RolloutPercent::try_new(101),
            Err(FlagError::RolloutPercentOutOfRange { percent: 101 })
        );
        assert!(serde_json::from_str::<RolloutPercent>("101").is_err());
        let state: FlagState = serde_json::from_str(
            r#"{"enabled":true,"rollout_percent":10,"group_id":"new-scoring"}"#,
        )
        .expect("valid flag");
        assert_eq!(state, flag(10));
    }
}

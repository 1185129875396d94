//! Duplicate-text detection for reviews: a normalised fingerprint (lowercase, punctuation
//! stripped, whitespace collapsed) and a near-duplicate test on fingerprints with the
//! Sørensen–Dice coefficient over character bigrams (`strsim::sorensen_dice`, linear in the
//! text length, unlike edit distance). The commands layer fingerprints a new text, compares it
//! with other users' reviews of the same capsule, and puts the first match in the command.

/// Fingerprints shorter than this are never duplicates: "great tool" twice is not spam.
pub const MIN_DUPLICATE_CHARS: usize = 24;
/// Sørensen–Dice similarity from which two fingerprints are near duplicates.
pub const NEAR_DUPLICATE_SIMILARITY: f64 = 0.9;
/// Most candidates compared for one text.
pub const MAX_DUPLICATE_CANDIDATES: usize = 500;

/// The normalised text: lowercase, characters that are neither alphanumeric nor whitespace
/// removed, runs of whitespace collapsed to one space, trimmed.
pub fn fingerprint(text: &str) -> String {
    let stripped: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether two fingerprints are near duplicates.
pub fn near_duplicate(a: &str, b: &str) -> bool {
    if a.chars().count() < MIN_DUPLICATE_CHARS || b.chars().count() < MIN_DUPLICATE_CHARS {
        return false;
    }
    if a == b {
        return true;
    }
    // `sorensen_dice` drops whitespace, then compares bigrams: with n and m letters it cannot
    // exceed 2·min / (n + m), so texts of too different lengths are skipped without it.
    let letters = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
    let (la, lb) = (letters(a), letters(b));
    let (short, long) = (la.min(lb) as f64, la.max(lb) as f64);
    if 2.0 * short / (short + long) < NEAR_DUPLICATE_SIMILARITY {
        return false;
    }
    strsim::sorensen_dice(a, b) >= NEAR_DUPLICATE_SIMILARITY
}

/// The id of the first of `candidates` (id, fingerprint) whose fingerprint nearly duplicates
/// `text`'s; at most [`MAX_DUPLICATE_CANDIDATES`] are compared.
pub fn find_near_duplicate<'a>(
    text: &str,
    candidates: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<&'a str> {
    let print = fingerprint(text);
    candidates
        .into_iter()
        .take(MAX_DUPLICATE_CANDIDATES)
        .find(|(_, other)| near_duplicate(&print, other))
        .map(|(id, _)| id)
}

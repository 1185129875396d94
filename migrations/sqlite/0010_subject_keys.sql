-- Data subjects' keys (DESIGN.md §9, crypto-shredding): personal data goes into events
-- encrypted with its subject's key; erasing a subject deletes the key (the row stays, with the
-- time of erasure, so a later write for the subject is refused rather than given a new key).
-- `subject` is a digest of the subject's id, never the id itself.
CREATE TABLE subject_keys (
    subject TEXT PRIMARY KEY,
    key_hex TEXT,
    created_at_us BIGINT NOT NULL,
    erased_at_us BIGINT
);

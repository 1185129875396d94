//! Safe inspection of a capsule bundle: a `.tar.gz` given as bytes, never written to disk.
//!
//! Refused, each with its own [`BundleError`]: a compressed size over the cap; an expanded
//! stream over the cap (read through [`LimitedReader`], so a decompression bomb stops at the cap
//! without allocating it); too many entries; one file too large; a path too long, absolute
//! (`/x`, `C:x`, `\x`), with `..`, with control characters or backslashes, or twice in the
//! archive; **every** link (symbolic or hard: a bundle is data, and refusing all links is simpler
//! and safer than resolving targets); device files and FIFOs; any other entry kind.
//!
//! The report lists every regular file (path, size, SHA-256, mode) sorted by path, with the risk
//! flags of [`FileFlags`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sha256_hex;

/// Caps on a bundle. `Default` is the documented default, not a production override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleLimits {
    pub max_compressed_bytes: u64,
    /// The whole decompressed tar stream (headers and padding included).
    pub max_expanded_bytes: u64,
    /// Entries of any kind, directories included.
    pub max_entries: usize,
    pub max_file_bytes: u64,
    pub max_path_bytes: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_compressed_bytes: 10 * 1024 * 1024,
            max_expanded_bytes: 100 * 1024 * 1024,
            max_entries: 10_000,
            max_file_bytes: 50 * 1024 * 1024,
            max_path_bytes: 255,
        }
    }
}

/// Bytes of each file's beginning that the content heuristics look at.
pub const SAMPLE_BYTES: usize = 64 * 1024;
/// A line at least this long in a text file's sample marks it minified.
pub const MINIFIED_LINE_CHARS: usize = 1_000;
/// A run at least this long of base64/hex characters marks an encoded blob.
pub const ENCODED_RUN_CHARS: usize = 1_024;
/// File names (last path component, lowercase) that run at install time in common ecosystems.
pub const INSTALL_SCRIPT_NAMES: &[&str] = &[
    "install.sh",
    "install",
    "setup.py",
    "setup.sh",
    "postinstall",
    "postinstall.sh",
    "postinstall.js",
    "preinstall",
    "preinstall.sh",
    "preinstall.js",
];

/// Why a bundle was refused. None is retryable: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is {size_bytes} bytes compressed; the limit is {max_bytes}")]
    CompressedTooLarge { size_bytes: u64, max_bytes: u64 },
    #[error("bundle expands past {max_bytes} bytes")]
    ExpandedTooLarge { max_bytes: u64 },
    #[error("bundle has more than {max_entries} entries")]
    TooManyEntries { max_entries: usize },
    #[error("{path} is {size_bytes} bytes; the limit for one file is {max_bytes}")]
    FileTooLarge {
        path: String,
        size_bytes: u64,
        max_bytes: u64,
    },
    #[error("a path is {length_bytes} bytes; the limit is {max_bytes}")]
    PathTooLong {
        length_bytes: usize,
        max_bytes: usize,
    },
    #[error("a path is not UTF-8")]
    NonUtf8Path,
    #[error("{path} is absolute")]
    AbsolutePath { path: String },
    #[error("{path} climbs out of the bundle with '..'")]
    ParentTraversal { path: String },
    #[error("{path:?} has a control character or a backslash")]
    InvalidPathCharacter { path: String },
    #[error("{path} appears twice")]
    DuplicatePath { path: String },
    #[error("{path} is a link to {target}; bundles may not contain links")]
    LinkNotAllowed { path: String, target: String },
    #[error("{path} is a device file or FIFO")]
    DeviceFile { path: String },
    #[error("{path} has an unsupported entry type ({type_flag})")]
    UnsupportedEntry { path: String, type_flag: u8 },
    #[error("bundle has no files")]
    Empty,
    #[error("bundle is not valid gzip: {message}")]
    InvalidGzip { message: String },
    #[error("bundle is not a valid tar archive: {message}")]
    InvalidTar { message: String },
}

/// Content flags used by the risk score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFlags {
    /// Starts with an ELF, Mach-O or PE (`MZ`) header.
    pub native_binary: bool,
    /// Its name is in [`INSTALL_SCRIPT_NAMES`].
    pub install_script: bool,
    /// Text with a line of [`MINIFIED_LINE_CHARS`]+ characters in its first [`SAMPLE_BYTES`].
    pub minified: bool,
    /// [`ENCODED_RUN_CHARS`]+ consecutive base64/hex characters in its first [`SAMPLE_BYTES`].
    pub encoded_blob: bool,
}

/// One regular file of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Normalised relative path (`./a//b` is `a/b`).
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// Unix permission bits.
    pub mode: u32,
    /// Any execute bit set.
    pub executable: bool,
    pub flags: FileFlags,
}

/// Counts over the files, for the risk score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFlags {
    pub executables: usize,
    pub native_binaries: usize,
    pub install_scripts: usize,
    pub minified: usize,
    pub encoded_blobs: usize,
}

/// What a bundle holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleReport {
    /// SHA-256 of the compressed bytes: the blob's address.
    pub sha256: String,
    pub size_bytes: u64,
    pub expanded_bytes: u64,
    pub files: Vec<BundleFile>,
    pub flags: BundleFlags,
}

/// A reader that fails once more than `limit` bytes went through it, and says so in `tripped`.
pub struct LimitedReader<'a, R> {
    inner: R,
    read: &'a Cell<u64>,
    limit: u64,
    tripped: &'a Cell<bool>,
}

impl<R: Read> Read for LimitedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for at most one byte past the limit: enough to know it was passed.
        let room = self.limit.saturating_sub(self.read.get()).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read.set(self.read.get() + n as u64);
        if self.read.get() > self.limit {
            self.tripped.set(true);
            return Err(io::Error::other("expanded size limit reached"));
        }
        Ok(n)
    }
}

/// Inspects `bytes` as a `.tar.gz` bundle.
pub fn inspect(bytes: &[u8], limits: &BundleLimits) -> Result<BundleReport, BundleError> {
    let size_bytes = bytes.len() as u64;
    if size_bytes > limits.max_compressed_bytes {
        return Err(BundleError::CompressedTooLarge {
            size_bytes,
            max_bytes: limits.max_compressed_bytes,
        });
    }
    let read = Cell::new(0u64);
    let tripped = Cell::new(false);
    let limited = LimitedReader {
        inner: GzDecoder::new(bytes),
        read: &read,
        limit: limits.max_expanded_bytes,
        tripped: &tripped,
    };
    let files = read_all(limited, limits).map_err(|e| match e {
        Failure::Rule(rule) => rule,
        Failure::Io(_) if tripped.get() => BundleError::ExpandedTooLarge {
            max_bytes: limits.max_expanded_bytes,
        },
        Failure::Io(e) if read.get() == 0 || e.kind() == io::ErrorKind::InvalidInput => {
            BundleError::InvalidGzip {
                message: e.to_string(),
            }
        }
        Failure::Io(e) => BundleError::InvalidTar {
            message: e.to_string(),
        },
    })?;
    if files.is_empty() {
        return Err(BundleError::Empty);
    }
    let files: Vec<BundleFile> = files.into_values().collect();
    let count = |f: fn(&BundleFile) -> bool| files.iter().filter(|x| f(x)).count();
    let flags = BundleFlags {
        executables: count(|f| f.executable || f.flags.native_binary),
        native_binaries: count(|f| f.flags.native_binary),
        install_scripts: count(|f| f.flags.install_script),
        minified: count(|f| f.flags.minified),
        encoded_blobs: count(|f| f.flags.encoded_blob),
    };
    Ok(BundleReport {
        sha256: sha256_hex(bytes),
        size_bytes,
        expanded_bytes: read.get(),
        files,
        flags,
    })
}

enum Failure {
    Rule(BundleError),
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<BundleError> for Failure {
    fn from(e: BundleError) -> Self {
        Failure::Rule(e)
    }
}

/// Reads every entry, then drains the stream so the gzip trailer (CRC, length) is checked too.
fn read_all<R: Read>(
    reader: R,
    limits: &BundleLimits,
) -> Result<BTreeMap<String, BundleFile>, Failure> {
    let mut archive = tar::Archive::new(reader);
    let files = read_entries(&mut archive, limits)?;
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(files)
}

fn read_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    limits: &BundleLimits,
) -> Result<BTreeMap<String, BundleFile>, Failure> {
    let mut files = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (index, entry) in archive.entries()?.enumerate() {
        if index >= limits.max_entries {
            return Err(BundleError::TooManyEntries {
                max_entries: limits.max_entries,
            }
            .into());
        }
        let mut entry = entry?;
        let path = checked_path(&entry.path_bytes(), limits)?;
        if !seen.insert(path.clone()) {
            return Err(BundleError::DuplicatePath { path }.into());
        }
        let kind = entry.header().entry_type();
        if path == "." && kind != tar::EntryType::Directory {
            return Err(BundleError::InvalidPathCharacter { path }.into());
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).chars().take(200).collect())
                    .unwrap_or_default();
                return Err(BundleError::LinkNotAllowed { path, target }.into());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(BundleError::DeviceFile { path }.into())
            }
            other => {
                return Err(BundleError::UnsupportedEntry {
                    path,
                    type_flag: other.as_byte(),
                }
                .into())
            }
        }
        let size_bytes = entry.size();
        if size_bytes > limits.max_file_bytes {
            return Err(BundleError::FileTooLarge {
                path,
                size_bytes,
                max_bytes: limits.max_file_bytes,
            }
            .into());
        }
        let mode = entry.header().mode().unwrap_or(0) & 0o7777;
        let (sha256, sample) = hash_with_sample(&mut entry)?;
        let file = BundleFile {
            flags: flags_of(&path, &sample),
            executable: mode & 0o111 != 0,
            path: path.clone(),
            size_bytes,
            sha256,
            mode,
        };
        files.insert(path, file);
    }
    Ok(files)
}

/// Streams a file through SHA-256, keeping its first [`SAMPLE_BYTES`] for the heuristics.
fn hash_with_sample<R: Read>(reader: &mut R) -> io::Result<(String, Vec<u8>)> {
    let mut hasher = Sha256::new();
    let mut sample = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        let room = SAMPLE_BYTES - sample.len();
        sample.extend_from_slice(&buf[..n.min(room)]);
    }
    Ok((hex::encode(hasher.finalize()), sample))
}

/// Checks a raw entry path and returns it normalised.
pub fn checked_path(raw: &[u8], limits: &BundleLimits) -> Result<String, BundleError> {
    if raw.len() > limits.max_path_bytes {
        return Err(BundleError::PathTooLong {
            length_bytes: raw.len(),
            max_bytes: limits.max_path_bytes,
        });
    }
    let path = std::str::from_utf8(raw).map_err(|_| BundleError::NonUtf8Path)?;
    let owned = || path.to_owned();
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(BundleError::InvalidPathCharacter { path: owned() });
    }
    let bytes = path.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if path.starts_with('/') || drive {
        return Err(BundleError::AbsolutePath { path: owned() });
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(BundleError::ParentTraversal { path: owned() }),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        // `./` itself: the archive root, harmless; name it so it can be skipped as a directory.
        return Ok(".".to_owned());
    }
    Ok(parts.join("/"))
}

/// The content heuristics of [`FileFlags`] on a file's path and first bytes.
pub fn flags_of(path: &str, sample: &[u8]) -> FileFlags {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let native_binary = sample.starts_with(b"\x7fELF")
        || sample.starts_with(b"MZ")
        || [
            [0xfe, 0xed, 0xfa, 0xce],
            [0xfe, 0xed, 0xfa, 0xcf],
            [0xce, 0xfa, 0xed, 0xfe],
            [0xcf, 0xfa, 0xed, 0xfe],
            [0xca, 0xfe, 0xba, 0xbe],
        ]
        .iter()
        .any(|magic| sample.starts_with(magic));
    let text = !native_binary && !sample.contains(&0);
    let longest_line = sample.split(|b| *b == b'\n').map(<[u8]>::len).max();
    FileFlags {
        native_binary,
        install_script: INSTALL_SCRIPT_NAMES.contains(&name.as_str()),
        minified: text && longest_line.unwrap_or(0) >= MINIFIED_LINE_CHARS,
        encoded_blob: text && longest_encoded_run(sample) >= ENCODED_RUN_CHARS,
    }
}

fn longest_encoded_run(sample: &[u8]) -> usize {
    let encoded =
        |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_');
    let (mut best, mut run) = (0, 0);
    for b in sample {
        run = if encoded(b) { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;

use super::*;
use crate::capsules::fixtures::{gzip, tar_gz, Entry};

fn limits() -> BundleLimits {
    BundleLimits::default()
}

#[test]
fn a_plain_bundle_lists_its_files_sorted_with_digests() {
    let bytes = tar_gz(&[
        Entry::file("./src/main.py", b"print('hi')\n"),
        Entry {
            mode: 0o755,
            ..Entry::file("bin/run", b"#!/bin/sh\necho hi\n")
        },
        Entry {
            kind: tar::EntryType::Directory,
            ..Entry::file("src/", b"")
        },
    ]);
    let report = inspect(&bytes, &limits()).unwrap();
    assert_eq!(report.sha256, sha256_hex(&bytes));
    assert_eq!(report.size_bytes, bytes.len() as u64);
    let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["bin/run", "src/main.py"]);
    let main = &report.files[1];
    assert_eq!(main.sha256, sha256_hex(b"print('hi')\n"));
    assert_eq!(main.size_bytes, 12);
    assert_eq!(main.mode, 0o644);
    assert!(!main.executable);
    assert!(report.files[0].executable);
    assert_eq!(report.flags.executables, 1);
    assert!(report.expanded_bytes >= 512 * 4);
}

#[test]
fn risky_contents_are_flagged() {
    let minified = format!("var a={};\n", "x".repeat(MINIFIED_LINE_CHARS));
    let encoded = "QUJD".repeat(ENCODED_RUN_CHARS / 4 + 1);
    let bytes = tar_gz(&[
        Entry::file("install.sh", b"curl x | sh\n"),
        Entry::file("lib/app.min.js", minified.as_bytes()),
        Entry::file("payload.txt", encoded.as_bytes()),
        Entry::file("tool", b"\x7fELF\x02\x01\x01\0rest"),
        Entry::file("README.md", b"# Hello\n"),
    ]);
    let report = inspect(&bytes, &limits()).unwrap();
    let flags = |p: &str| report.files.iter().find(|f| f.path == p).unwrap().flags;
    assert!(flags("install.sh").install_script);
    assert!(flags("lib/app.min.js").minified);
    assert!(flags("payload.txt").encoded_blob);
    assert!(flags("tool").native_binary);
    assert_eq!(flags("README.md"), FileFlags::default());
    assert_eq!(
        report.flags,
        BundleFlags {
            executables: 1,
            native_binaries: 1,
            install_scripts: 1,
            minified: 2,
            encoded_blobs: 1,
        }
    );
}

#[test]
fn unsafe_paths_are_refused_each_with_its_error() {
    type Check = fn(&BundleError) -> bool;
    let cases: [(&str, Check); 5] = [
        ("/etc/passwd", |e| {
            matches!(e, BundleError::AbsolutePath { .. })
        }),
        ("C:/x", |e| matches!(e, BundleError::AbsolutePath { .. })),
        ("a/../../x", |e| {
            matches!(e, BundleError::ParentTraversal { .. })
        }),
        ("a\\b", |e| {
            matches!(e, BundleError::InvalidPathCharacter { .. })
        }),
        ("a\tb", |e| {
            matches!(e, BundleError::InvalidPathCharacter { .. })
        }),
    ];
    for (name, expected) in cases {
        let err = inspect(&tar_gz(&[Entry::file(name, b"x")]), &limits()).unwrap_err();
        assert!(expected(&err), "{name}: {err:?}");
    }
    let err = inspect(&tar_gz(&[Entry::file("a/\u{e9}", b"x")]), &limits());
    assert!(err.is_ok(), "non-ASCII UTF-8 is fine");
    let raw = Entry {
        name: b"bad\xff",
        ..Entry::file("", b"x")
    };
    assert_eq!(
        inspect(&tar_gz(&[raw]), &limits()),
        Err(BundleError::NonUtf8Path)
    );
    let root_file = tar_gz(&[Entry::file("./", b"x")]);
    assert_eq!(
        inspect(&root_file, &limits()),
        Err(BundleError::InvalidPathCharacter { path: ".".into() })
    );
    let dup = tar_gz(&[Entry::file("a/b", b"1"), Entry::file("./a//b", b"2")]);
    assert_eq!(
        inspect(&dup, &limits()),
        Err(BundleError::DuplicatePath { path: "a/b".into() })
    );
}

#[test]
fn links_and_devices_are_refused() {
    for kind in [tar::EntryType::Symlink, tar::EntryType::Link] {
        let link = Entry {
            kind,
            link: b"../../etc/shadow",
            ..Entry::file("x", b"")
        };
        assert_eq!(
            inspect(&tar_gz(&[link]), &limits()),
            Err(BundleError::LinkNotAllowed {
                path: "x".into(),
                target: "../../etc/shadow".into()
            })
        );
    }
    for kind in [
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        let dev = Entry {
            kind,
            ..Entry::file("dev", b"")
        };
        assert_eq!(
            inspect(&tar_gz(&[dev]), &limits()),
            Err(BundleError::DeviceFile { path: "dev".into() })
        );
    }
}

#[test]
fn size_and_count_caps_hold() {
    let small = BundleLimits {
        max_compressed_bytes: 20,
        ..limits()
    };
    let bytes = tar_gz(&[Entry::file("a", &[7u8; 10_000])]);
    assert!(matches!(
        inspect(&bytes, &small),
        Err(BundleError::CompressedTooLarge { .. })
    ));
    let one_file = BundleLimits {
        max_file_bytes: 9_999,
        ..limits()
    };
    assert!(matches!(
        inspect(&bytes, &one_file),
        Err(BundleError::FileTooLarge {
            size_bytes: 10_000,
            ..
        })
    ));
    let two = BundleLimits {
        max_entries: 2,
        ..limits()
    };
    let three = tar_gz(&[
        Entry::file("a", b""),
        Entry::file("b", b""),
        Entry::file("c", b""),
    ]);
    assert_eq!(
        inspect(&three, &two),
        Err(BundleError::TooManyEntries { max_entries: 2 })
    );
    let long = "d/".repeat(200) + "f";
    assert!(matches!(
        checked_path(long.as_bytes(), &limits()),
        Err(BundleError::PathTooLong { .. })
    ));
}

#[test]
fn a_decompression_bomb_stops_at_the_expanded_cap() {
    // 64 MiB of zeros compress to ~64 KiB; with a 1 MiB cap the reader stops after ~1 MiB.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = gzip(&zeros);
    assert!(bomb.len() < 200 * 1024);
    let capped = BundleLimits {
        max_expanded_bytes: 1024 * 1024,
        ..limits()
    };
    assert_eq!(
        inspect(&bomb, &capped),
        Err(BundleError::ExpandedTooLarge {
            max_bytes: 1024 * 1024
        })
    );
    let big_file = tar_gz(&[Entry::file("big", &zeros[..4 * 1024 * 1024])]);
    assert_eq!(
        inspect(&big_file, &capped),
        Err(BundleError::ExpandedTooLarge {
            max_bytes: 1024 * 1024
        })
    );
}

#[test]
fn malformed_bytes_are_typed_errors() {
    assert!(matches!(
        inspect(b"not gzip at all", &limits()),
        Err(BundleError::InvalidGzip { .. })
    ));
    assert!(matches!(
        inspect(&gzip(&[1u8; 700]), &limits()),
        Err(BundleError::InvalidTar { .. })
    ));
    assert_eq!(
        inspect(&gzip(&[0u8; 1024]), &limits()),
        Err(BundleError::Empty)
    );
    let good = tar_gz(&[Entry::file("a", b"hello")]);
    for cut in [10, good.len() / 2, good.len() - 4] {
        assert!(inspect(&good[..cut], &limits()).is_err());
    }
    assert!(inspect(b"", &limits()).is_err());
}

//! The simulation corpus: pipeline logs shipped in the binary for `POST /npe/log-marketplace/simulate`.
//!
//! The simulate endpoint analyses N of these logs with the deterministic analysers (Error
//! Detective, Performance Analyzer, Security Guardian, Quality Inspector) instead of asking a
//! caller for logs, so a fresh installation can demonstrate the whole marketplace loop.
//!
//! Every log is **synthetic**: invented for Agora, not copied from a real system. Each is written
//! in the exact output format of the real tool (rustc, pytest with coverage.py, kubectl, NestJS,
//! nginx combined log, npm, tsc, Maven/javac, Surefire, gcc/make, BuildKit, `go test`, cargo
//! test, Helm, gunicorn/Flask, PostgreSQL, Rails, OpenSSH) behind the real CI prefixes
//! (GitHub Actions, Jenkins Timestamper, GitLab job timestamps, `ts`, syslog), so the analysers
//! meet the shapes they meet in production, with timestamps on most lines.
//!
//! Conventions, checked by the tests below:
//!
//! * IPv4 addresses come only from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//!   203.0.113.0/24, RFC 5737) or are private cluster addresses (10.0.0.0/8), loopback or the
//!   unspecified address; e-mail addresses are `@example.com`; hosts are `*.example.com`;
//! * the leaked credentials in `deploy-secrets-missing-env` are invented, pattern-valid (`AKIA` +
//!   16 characters, `ghp_` + 36 characters) and were never issued; they are deliberately not the
//!   documented `AKIAIOSFODNN7EXAMPLE`, which the redactor treats as a placeholder;
//! * every log is 15–120 lines and well under 64 KiB.
//!
//! The first five entries cover all four stages plus a security log, so a simulation with a
//! small `iterations` count still shows every agent at work. The last three are clean runs that
//! should produce few or no insights.

/// One log of the simulation corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorpusLog {
    /// Stable id, also the file name without `.log`; starts with `<stage>-`.
    pub name: &'static str,
    /// Pipeline stage: `build`, `test`, `deploy` or `runtime`.
    pub stage: &'static str,
    /// The log text (UTF-8, `\n` line endings).
    pub content: &'static str,
    /// What a reader should expect the analysers to find (human text).
    pub exercises: &'static str,
}

/// The pipeline stages a corpus log may belong to.
pub const STAGES: &[&str] = &["build", "test", "deploy", "runtime"];

/// The corpus, in simulation order.
pub const CORPUS: &[CorpusLog] = &[
    CorpusLog {
        name: "build-rust-compile-error",
        stage: "build",
        content: include_str!("build-rust-compile-error.log"),
        exercises: "GitHub Actions cargo build failing with rustc diagnostics: error[E0425] \
            (cannot find value `fee_bps`, fees.rs:27:40) and error[E0308] (mismatched types, \
            expected `i64` found `u64`, balance.rs:48:9) with `-->` locations and help \
            suggestions, an unused-import warning, exit code 101. Expect compilation errors with \
            file and line numbers.",
    },
    CorpusLog {
        name: "test-pytest-coverage",
        stage: "test",
        content: include_str!("test-pytest-coverage.log"),
        exercises:
            "Jenkins pytest session: 3 FAILED tests (AssertionError on a discount total and a \
            due date, DID NOT RAISE) and 1 setup ERROR (ConnectionRefusedError), with the \
            short test summary; pytest-cov table with TOTAL 74% and `Required test coverage of \
            80% not reached`. Expect test failures and low coverage (payments modules ~50%).",
    },
    CorpusLog {
        name: "deploy-kubernetes-oomkilled",
        stage: "deploy",
        content: include_str!("deploy-kubernetes-oomkilled.log"),
        exercises: "kubectl rollout of orders-api 3.14.0 exceeding its progress deadline: pod in \
            CrashLoopBackOff, Last State OOMKilled (exit 137) at a 512Mi limit, `Back-off \
            restarting failed container` and node OOMKilling events, app logs at 92% and 99% of \
            the memory limit, then a rollback. Expect a failed deploy and high memory usage.",
    },
    CorpusLog {
        name: "runtime-node-typeerror",
        stage: "runtime",
        content: include_str!("runtime-node-typeerror.log"),
        exercises: "NestJS container log (kubectl --timestamps): five `TypeError: Cannot read \
            properties of undefined (reading 'id')` at OrdersService.create \
            (/app/src/orders.service.ts:42:31), each a POST /api/orders 500, then the same error \
            uncaught in a Kafka listener crashing the process (Node.js v20.18.0). Expect a \
            critical runtime exception with a missing null check.",
    },
    CorpusLog {
        name: "runtime-nginx-attacks",
        stage: "runtime",
        content: include_str!("runtime-nginx-attacks.log"),
        exercises: "nginx combined access log: sqlmap SQL injection against /products?id= \
            (`1%27%20OR%20%271%27=%271`, UNION SELECT, pg_sleep), url-encoded `<script>` and \
            onerror XSS in /search, credential stuffing (14 x 401 then 429 on /api/v1/login from \
            198.51.100.23), probes for /.env, /.git/config and path traversal, repeated 401s on \
            admin endpoints. Expect SQL injection, XSS, unauthorized access and suspicious IPs.",
    },
    CorpusLog {
        name: "build-typescript-npm",
        stage: "build",
        content: include_str!("build-typescript-npm.log"),
        exercises: "GitHub Actions npm install failing with `npm ERR! ERESOLVE unable to resolve \
            dependency tree` (react 18 vs react-beautiful-dnd peer range), a retry with \
            --legacy-peer-deps printing nine `npm WARN deprecated` lines, then tsc errors TS2322, \
            TS2339, TS2345, TS2305 and TS7016 with file(line,col). Expect a dependency conflict, \
            deprecated dependencies and type errors.",
    },
    CorpusLog {
        name: "test-jest-coverage",
        stage: "test",
        content: include_str!("test-jest-coverage.log"),
        exercises: "Jenkins Jest run: two FAIL suites with three `●` blocks (a TypeError at \
            orders.service.ts:42, a toBe mismatch, a promise that resolved instead of \
            rejecting), istanbul `All files` table at 77.12% lines and threshold messages, \
            `Tests: 3 failed, 1 skipped, 94 passed, 98 total`. Expect test failures and low \
            coverage.",
    },
    CorpusLog {
        name: "deploy-secrets-missing-env",
        stage: "deploy",
        content: include_str!("deploy-secrets-missing-env.log"),
        exercises: "Deploy script traced with `set -x` that prints an AWS access key id, an AWS \
            secret access key and a GitHub token (ghp_) in a clone URL, an unencrypted docker \
            credential warning, then a migration task failing with `Error: missing required \
            environment variable DATABASE_URL` and the deploy aborted. Expect exposed secrets \
            (critical) and a configuration error.",
    },
    CorpusLog {
        name: "runtime-postgres-slow-queries",
        stage: "runtime",
        content: include_str!("runtime-postgres-slow-queries.log"),
        exercises: "PostgreSQL 16 server log: repeated `duration: 1842.331 ms  statement: SELECT \
            ... WHERE lower(u.email) = ...` (missing expression index), a 9.3 s report query \
            spilling a 256 MB temporary file, slow parameterised executes, a deadlock, \
            connection slots exhausted and failed password authentication for `postgres` from \
            203.0.113.45. Expect slow queries (>1000 ms) plus errors and auth failures.",
    },
    CorpusLog {
        name: "runtime-sshd-bruteforce",
        stage: "runtime",
        content: include_str!("runtime-sshd-bruteforce.log"),
        exercises: "syslog auth.log: within about 30 seconds 203.0.113.45 fails 15 passwords \
            (`Failed password for invalid user admin from 203.0.113.45 port 52144 ssh2` x6, \
            then root, ubuntu, test, oracle) and hits `maximum authentication attempts \
            exceeded`, next to a legitimate publickey login and sudo. Expect a brute-force \
            attack from one IP.",
    },
    CorpusLog {
        name: "build-docker-image",
        stage: "build",
        content: include_str!("build-docker-image.log"),
        exercises: "BuildKit plain progress (`#12 exporting layers 18.4s done`) of a single-stage \
            Node image that installs chromium and build-essential, then `docker images` \
            showing 1.4GB (previous tags 1.38GB and 1.11GB) and `docker history` layer sizes. \
            Expect a large Docker image (>1GB) with a multi-stage build as the fix.",
    },
    CorpusLog {
        name: "test-maven-surefire",
        stage: "test",
        content: include_str!("test-maven-surefire.log"),
        exercises: "GitLab Maven Surefire run: `[ERROR] Tests run: 12, Failures: 1, Errors: 1` \
            with `<<< FAILURE!` (AssertionFailedError expected <107.00> but was <119.00>, \
            InvoiceServiceTest.java:48) and `<<< ERROR!` (java.lang.NullPointerException in \
            ReminderService.java:64), a second failing class, BUILD FAILURE. Expect test \
            failures with stack traces and a Java NullPointerException.",
    },
    CorpusLog {
        name: "runtime-rails-n-plus-one",
        stage: "runtime",
        content: include_str!("runtime-rails-n-plus-one.log"),
        exercises: "Rails production log: GET /admin/orders runs one Order Load, then \
            `User Load (0.4ms)  SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" = $1` 20 \
            times in the same request (N+1, missing includes(:user)), a 1402.7ms COUNT, and \
            `Completed 200 OK in 2134ms`; two fast requests around it. Expect an N+1 query \
            problem and a slow response (>2 s).",
    },
    CorpusLog {
        name: "build-java-maven",
        stage: "build",
        content: include_str!("build-java-maven.log"),
        exercises: "Maven (timestamped) compile failure: javac `cannot find symbol` \
            (InvoiceService.java:[57,41], method getTaxRate()), `incompatible types: \
            java.math.BigDecimal cannot be converted to long`, a public class in the wrong \
            file, plus deprecated-API warnings; BUILD FAILURE. Expect compilation errors with \
            file and line numbers.",
    },
    CorpusLog {
        name: "test-go-failures",
        stage: "test",
        content: include_str!("test-go-failures.log"),
        exercises: "GitLab `go test -race ./...`: `--- FAIL:` subtests with handler_test.go:42 \
            status mismatches, a nil pointer dereference panic with goroutine trace \
            (redis.go:88), a DATA RACE report in sliding.go, FAIL per package. Expect test \
            failures, a panic and a race condition.",
    },
    CorpusLog {
        name: "runtime-python-traceback",
        stage: "runtime",
        content: include_str!("runtime-python-traceback.log"),
        exercises: "gunicorn + Flask service: a Python 3.11 traceback ending in `KeyError: 'NO'` \
            (render.py:41, missing VAT rate), a 2417ms response, WORKER TIMEOUT and SIGKILL \
            (perhaps out of memory), and a chained psycopg2/SQLAlchemy OperationalError \
            (connection slots exhausted). Expect runtime exceptions, a slow response and \
            connection pool exhaustion.",
    },
    CorpusLog {
        name: "build-c-gcc-make",
        stage: "build",
        content: include_str!("build-c-gcc-make.log"),
        exercises: "make -j4 with gcc 14 and -Werror: implicit declaration of `rb_reset` \
            (config.c:88:9), sign-compare (config.c:112:23), unused variable and \
            maybe-uninitialized in parser.c, `cc1: all warnings being treated as errors`, \
            `make: *** [Makefile:41: build/config.o] Error 1`. Expect compilation errors with \
            file and line numbers.",
    },
    CorpusLog {
        name: "deploy-helm-healthy",
        stage: "deploy",
        content: include_str!("deploy-helm-healthy.log"),
        exercises: "Clean run: helm upgrade --atomic of catalog-api 4.1.2 (STATUS: deployed, \
            revision 37), rollout complete, three pods Running with 0 restarts at about 180Mi, \
            smoke tests 6/6 with p95 0.16s. Expect few or no insights.",
    },
    CorpusLog {
        name: "test-rust-green",
        stage: "test",
        content: include_str!("test-rust-green.log"),
        exercises: "Clean run: cargo test on the fixed ledger service, 14 unit, 6 integration \
            and 2 doc tests, every `test result: ok` with 0 failed. Expect few or no insights.",
    },
    CorpusLog {
        name: "build-go-success",
        stage: "build",
        content: include_str!("build-go-success.log"),
        exercises: "Clean run: GitLab job building a Go service (go mod verify, go vet, gofmt \
            check, a 9.6M static binary, cache and artifact upload, `Job succeeded`). Expect \
            few or no insights.",
    },
];

/// The corpus entry with this name.
pub fn find(name: &str) -> Option<&'static CorpusLog> {
    CORPUS.iter().find(|log| log.name == name)
}

#[cfg(test)]
mod expectations;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn corpus_has_a_reasonable_size() {
        assert!(
            (14..=20).contains(&CORPUS.len()),
            "corpus has {} logs",
            CORPUS.len()
        );
    }

    #[test]
    fn every_entry_is_well_formed() {
        for log in CORPUS {
            assert!(!log.name.is_empty(), "empty name");
            assert!(
                !log.content.trim().is_empty(),
                "{}: empty content",
                log.name
            );
            assert!(
                !log.exercises.trim().is_empty(),
                "{}: no description",
                log.name
            );
            assert!(
                STAGES.contains(&log.stage),
                "{}: stage {:?}",
                log.name,
                log.stage
            );
            assert!(
                log.name.starts_with(&format!("{}-", log.stage)),
                "{}: name does not start with its stage",
                log.name
            );
            assert!(
                log.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}: name is not kebab-case",
                log.name
            );
            assert!(
                log.content.len() < 64 * 1024,
                "{}: {} bytes",
                log.name,
                log.content.len()
            );
            let lines = log.content.lines().count();
            assert!((15..=120).contains(&lines), "{}: {lines} lines", log.name);
            assert!(
                log.content.ends_with('\n'),
                "{}: no final newline",
                log.name
            );
        }
    }

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for log in CORPUS {
            assert!(seen.insert(log.name), "duplicate name {}", log.name);
        }
    }

    #[test]
    fn content_is_clean_text() {
        for log in CORPUS {
            // `&str` is valid UTF-8 by construction; also refuse what a mangled file would hold.
            for (n, line) in log.content.lines().enumerate() {
                for c in line.chars() {
                    assert!(
                        c == '\t' || !c.is_control(),
                        "{} line {}: control character {:?}",
                        log.name,
                        n + 1,
                        c
                    );
                    assert!(
                        c != '\u{FFFD}',
                        "{} line {}: replacement character",
                        log.name,
                        n + 1
                    );
                }
            }
            let non_ascii = log.content.chars().filter(|c| !c.is_ascii()).count();
            assert!(
                non_ascii <= 16,
                "{}: {non_ascii} non-ASCII characters",
                log.name
            );
        }
    }

    #[test]
    fn first_five_cover_every_stage() {
        let first: HashSet<&str> = CORPUS.iter().take(5).map(|log| log.stage).collect();
        for stage in STAGES {
            assert!(
                first.contains(stage),
                "stage {stage} missing from the first five"
            );
        }
    }

    #[test]
    fn find_by_name() {
        assert_eq!(
            find("build-rust-compile-error").map(|l| l.stage),
            Some("build")
        );
        assert!(find("no-such-log").is_none());
    }

    #[test]
    fn no_documented_example_credentials() {
        for log in CORPUS {
            assert!(
                !log.content.contains("AKIAIOSFODNN7EXAMPLE"),
                "{}: uses the documented AWS example key",
                log.name
            );
            assert!(
                !log.content
                    .contains("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                "{}: uses the documented AWS example secret",
                log.name
            );
        }
    }

    /// `AKIA` + 16 of `[0-9A-Z]`, not preceded or followed by an alphanumeric character.
    fn has_aws_key_id(text: &str) -> bool {
        let b = text.as_bytes();
        (0..b.len().saturating_sub(19)).any(|i| {
            &b[i..i + 4] == b"AKIA"
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                && b[i + 4..i + 20]
                    .iter()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
                && !b.get(i + 20).is_some_and(|c| c.is_ascii_alphanumeric())
        })
    }

    /// `ghp_` + at least 36 alphanumeric characters.
    fn has_github_token(text: &str) -> bool {
        text.match_indices("ghp_").any(|(i, _)| {
            text[i + 4..]
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count()
                >= 36
        })
    }

    #[test]
    fn the_leak_log_still_leaks() {
        let leak = find("deploy-secrets-missing-env").expect("leak log");
        assert!(has_aws_key_id(leak.content));
        assert!(has_github_token(leak.content));
        assert!(!has_aws_key_id("AKIAIOSFODNN7EXAMPL"));
        assert!(!has_github_token("ghp_short"));
        // Only that log carries credentials.
        for log in CORPUS.iter().filter(|l| l.name != leak.name) {
            assert!(!has_aws_key_id(log.content), "{}: AWS key id", log.name);
            assert!(!has_github_token(log.content), "{}: GitHub token", log.name);
        }
    }

    /// The dotted quads in `text` that look like IPv4 addresses: four decimal octets (0–255,
    /// no leading zeros) not part of a longer dotted number, and not version-like (preceded by
    /// a letter as in `v1.2.3.4`, by `@` as in `pkg@1.2.3.4`, or by `Product/` as in
    /// `Chrome/130.0.0.0`).
    fn ipv4_addresses(text: &str) -> Vec<[u8; 4]> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.'))
            {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i;
            while end < b.len() && (b[end].is_ascii_digit() || b[end] == b'.') {
                end += 1;
            }
            i = end;
            let run = text[start..end].trim_end_matches('.');
            let parts: Vec<&str> = run.split('.').collect();
            if parts.len() != 4 {
                continue;
            }
            let mut octets = [0u8; 4];
            let valid = parts.iter().zip(octets.iter_mut()).all(|(p, o)| {
                let ok = !p.is_empty()
                    && p.len() <= 3
                    && !(p.len() > 1 && p.starts_with('0'))
                    && p.parse::<u16>().is_ok_and(|v| v <= 255);
                if ok {
                    *o = p.parse::<u8>().unwrap_or(0);
                }
                ok
            });
            if !valid {
                continue;
            }
            let before = start.checked_sub(1).map(|k| b[k]);
            let version_like = match before {
                Some(c) if c.is_ascii_alphabetic() || c == b'@' || c == b'_' => true,
                Some(b'/') => start >= 2 && b[start - 2].is_ascii_alphanumeric(),
                _ => false,
            };
            let glued = b
                .get(start + run.len())
                .is_some_and(|c| c.is_ascii_alphabetic());
            if !version_like && !glued {
                out.push(octets);
            }
        }
        out
    }

    fn allowed(ip: [u8; 4]) -> bool {
        matches!(
            ip,
            [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] | [10, _, _, _]
        ) || ip == [127, 0, 0, 1]
            || ip == [0, 0, 0, 0]
    }

    #[test]
    fn ipv4_checker_works() {
        let found = |s: &str| ipv4_addresses(s);
        assert_eq!(
            found("from 203.0.113.45 port 52144"),
            vec![[203, 0, 113, 45]]
        );
        assert_eq!(found("host=8.8.8.8:53."), vec![[8, 8, 8, 8]]);
        assert_eq!(found("http://172.16.4.2/x"), vec![[172, 16, 4, 2]]);
        assert!(found("Chrome/130.0.0.0 Safari").is_empty());
        assert!(found("v1.2.3.4 and pkg@4.3.2.1 and 1.2.3.4.5 and 1.2.3 and 01.2.3.4").is_empty());
        assert!(found("256.1.1.1 or 10:45:00.123").is_empty());
        assert!(allowed([198, 51, 100, 23]) && allowed([10, 42, 3, 117]));
        assert!(
            !allowed([192, 168, 1, 100]) && !allowed([172, 17, 0, 2]) && !allowed([8, 8, 8, 8])
        );
    }

    #[test]
    fn only_documentation_ip_addresses() {
        for log in CORPUS {
            for (n, line) in log.content.lines().enumerate() {
                for ip in ipv4_addresses(line) {
                    assert!(
                        allowed(ip),
                        "{} line {}: non-documentation IPv4 address {}.{}.{}.{}",
                        log.name,
                        n + 1,
                        ip[0],
                        ip[1],
                        ip[2],
                        ip[3]
                    );
                }
            }
        }
    }

    #[test]
    fn emails_use_example_domains() {
        for log in CORPUS {
            for word in log
                .content
                .split(|c: char| c.is_whitespace() || "'\"(),;<>[]".contains(c))
            {
                let Some((local, domain)) = word.split_once('@') else {
                    continue;
                };
                // `pkg@1.2.3`, `react@"^18"`, `x-access-token:ghp_...@github.com` are not addresses.
                let is_email = !local.is_empty()
                    && local
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(&c))
                    && domain.contains('.')
                    && domain
                        .bytes()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic())
                    && domain.rsplit('.').next().is_some_and(|tld| {
                        tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic())
                    });
                if is_email {
                    assert!(
                        domain.ends_with("example.com") || domain.ends_with("example.net"),
                        "{}: e-mail address outside example domains: {word}",
                        log.name
                    );
                }
            }
        }
    }

    #[test]
    fn every_log_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/logmarket/corpus");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".log") {
                assert!(find(stem).is_some(), "{name} is not in CORPUS");
            }
        }
    }

    #[test]
    fn most_lines_carry_a_timestamp() {
        // A timestamp-ish token: `HH:MM:SS` somewhere on the line.
        fn has_clock(line: &str) -> bool {
            let b = line.as_bytes();
            b.windows(8).any(|w| {
                w[0].is_ascii_digit()
                    && w[1].is_ascii_digit()
                    && w[2] == b':'
                    && w[3].is_ascii_digit()
                    && w[4].is_ascii_digit()
                    && w[5] == b':'
                    && w[6].is_ascii_digit()
                    && w[7].is_ascii_digit()
            })
        }
        let stamped = CORPUS
            .iter()
            .filter(|log| {
                let lines: Vec<&str> = log.content.lines().collect();
                lines.iter().filter(|l| has_clock(l)).count() * 2 > lines.len()
            })
            .count();
        assert!(
            stamped * 4 >= CORPUS.len() * 3,
            "only {stamped} logs are mostly timestamped"
        );
    }
}

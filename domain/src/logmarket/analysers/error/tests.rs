//! The Error Detective's rule tests (real-shaped lines written for them).

use super::*;
use InsightKind::*;

fn run(text: &str) -> Vec<Insight> {
    analyse(&LogText::new(text), &AnalyserConfig::default())
}

fn only(text: &str, kind: InsightKind) -> Vec<Insight> {
    run(text).into_iter().filter(|i| i.kind == kind).collect()
}

fn one(text: &str, kind: InsightKind) -> Insight {
    let v = only(text, kind);
    assert_eq!(v.len(), 1, "expected one {kind:?}, got {v:#?}");
    v.into_iter().next().unwrap()
}

#[test]
fn every_trigger_has_an_anchor() {
    assert_eq!(
        Triggers::unanchored(PATTERNS, ANCHORS, CO_ANCHORED),
        Vec::<&str>::new()
    );
}

#[test]
fn benign_lines_trigger_nothing() {
    let log = "\
2024-05-01 12:00:00 INFO server started, error_count=0 errors_total=0
GET https://example.com/api/errors/list 200
warning: 0 warnings
test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
Tests run: 5, Failures: 0, Errors: 0, Skipped: 0
Tests:       7 passed, 7 total
===== 15 passed in 0.42s =====
--- PASS: TestAdd (0.00s)
ok  \texample.com/m\t0.003s
handleErrorResponse() returned ok
config loaded from /etc/app/config.yaml
[INFO] BUILD SUCCESS
The ErrorHandler bean was registered
Thread-3 Exception handler installed
";
    let v = run(log);
    assert!(v.is_empty(), "{v:#?}");
}

// ---- compile errors ------------------------------------------------------------------

#[test]
fn rustc_error_with_location_and_summary_count() {
    let log = "\
   Compiling demo v0.1.0 (/work/demo)
error[E0425]: cannot find value `x` in this scope
 --> src/main.rs:4:5
  |
4 |     x + 1
  |     ^ not found in this scope

error[E0308]: mismatched types
 --> src/main.rs:9:18
  |
9 |     let n: u32 = \"7\";
  |            ---   ^^^ expected `u32`, found `&str`
  |            |
  |            expected due to this

Some errors have detailed explanations: E0308, E0425.
For more information about an error, try `rustc --explain E0308`.
error: could not compile `demo` (bin \"demo\") due to 2 previous errors
";
    let v = only(log, CompileError);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(v[0].severity, Severity::High);
    assert_eq!(v[0].location.as_deref(), Some("src/main.rs:4:5"));
    assert_eq!(v[0].log_line, 2);
    assert_eq!(v[0].root_cause.as_deref(), Some("unresolved name `x`"));
    assert!(v[0].fix.contains("Declare or import `x`"), "{}", v[0].fix);
    assert_eq!(v[0].impact, "build blocked: 2 compile errors");
    assert_eq!(v[0].details["code"], "E0425");
    assert_eq!(v[1].location.as_deref(), Some("src/main.rs:9:18"));
    assert_eq!(
        v[1].root_cause.as_deref(),
        Some("type mismatch: expected `u32`, found `&str`")
    );
}

#[test]
fn rustc_uncoded_error_needs_an_arrow() {
    let log = "\
error: expected one of `,`, `.`, `;`, or an operator, found `}`
 --> src/lib.rs:3:1
  |
error: Your local changes to the following files would be overwritten by merge
";
    let v = only(log, CompileError);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].location.as_deref(), Some("src/lib.rs:3:1"));
}

#[test]
fn gcc_clang_javac_and_maven_errors() {
    let log = "\
main.c:10:5: error: use of undeclared identifier 'count'
   10 |     count++;
      |     ^
src/util.c:3:10: fatal error: openssl/ssl.h: No such file or directory
src/main/java/com/x/Foo.java:12: error: cannot find symbol
        return bar(1);
               ^
  symbol:   method bar(int)
  location: class Foo
[ERROR] /home/ci/app/src/main/java/com/x/Order.java:[42,17] cannot find symbol
[ERROR]   symbol:   variable orderId
[ERROR]   location: class com.x.Order
[ERROR] Failed to execute goal org.apache.maven.plugins:maven-compiler-plugin:3.11.0:compile (default-compile) on project app: Compilation failure
[ERROR] /home/ci/app/src/main/java/com/x/Order.java:[42,17] cannot find symbol
";
    let v = only(log, CompileError);
    assert_eq!(v.len(), 4, "{v:#?}");
    assert_eq!(v[0].location.as_deref(), Some("main.c:10:5"));
    assert_eq!(v[0].root_cause.as_deref(), Some("unresolved name `count`"));
    assert_eq!(v[1].location.as_deref(), Some("src/util.c:3:10"));
    assert!(v[1].fix.contains("openssl/ssl.h"), "{}", v[1].fix);
    assert_eq!(
        v[2].location.as_deref(),
        Some("src/main/java/com/x/Foo.java:12")
    );
    assert_eq!(v[2].root_cause.as_deref(), Some("unresolved name `bar`"));
    assert_eq!(
        v[3].location.as_deref(),
        Some("/home/ci/app/src/main/java/com/x/Order.java:42:17")
    );
    assert_eq!(
        v[3].root_cause.as_deref(),
        Some("unresolved name `orderId`")
    );
    assert_eq!(v[3].impact, "build blocked: 4 compile errors");
}

#[test]
fn tsc_both_formats_and_go() {
    let log = "\
src/a.ts(10,5): error TS2322: Type 'string' is not assignable to type 'number'.
src/b.ts:3:7 - error TS2304: Cannot find name 'foo'.
# example.com/m
./main.go:10:5: undefined: x
./main.go:12:2: declared and not used: y
main.go:20:9: Error return value of `f.Close` is not checked (errcheck)
";
    let v = only(log, CompileError);
    assert_eq!(v.len(), 4, "{v:#?}");
    assert_eq!(v[0].location.as_deref(), Some("src/a.ts:10:5"));
    assert_eq!(v[0].details["code"], "TS2322");
    assert!(v[0]
        .root_cause
        .as_deref()
        .unwrap()
        .contains("'string' is not assignable"));
    assert_eq!(v[1].location.as_deref(), Some("src/b.ts:3:7"));
    assert_eq!(v[1].root_cause.as_deref(), Some("unresolved name `foo`"));
    assert_eq!(v[2].location.as_deref(), Some("./main.go:10:5"));
    assert_eq!(v[2].root_cause.as_deref(), Some("unresolved name `x`"));
    assert_eq!(v[3].location.as_deref(), Some("./main.go:12:2"));
}

#[test]
fn python_syntax_error_in_traceback_is_a_compile_error() {
    let log = "\
Traceback (most recent call last):
  File \"/app/manage.py\", line 22, in <module>
    main()
  File \"/app/settings.py\", line 14
    DEBUG = True True
                 ^^^^
SyntaxError: invalid syntax
";
    let i = one(log, CompileError);
    assert_eq!(i.location.as_deref(), Some("/app/settings.py:14"));
    assert_eq!(i.severity, Severity::High);
    assert_eq!(i.title, "SyntaxError: invalid syntax");
    assert!(only(log, RuntimeException).is_empty());
}

#[test]
fn bare_python_indentation_error() {
    let log = "\
  File \"app.py\", line 5
    return x
    ^
IndentationError: unexpected indent
";
    let i = one(log, CompileError);
    assert_eq!(i.location.as_deref(), Some("app.py:5"));
}

// ---- test failures ---------------------------------------------------------------------

#[test]
fn cargo_test_failures_one_per_test() {
    let log = "\
running 3 tests
test tests::adds ... ok
test tests::subtracts ... FAILED
test tests::divides ... FAILED

failures:

---- tests::subtracts stdout ----

thread 'tests::subtracts' panicked at src/lib.rs:10:5:
assertion `left == right` failed
  left: 2
 right: 3
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

---- tests::divides stdout ----
thread 'tests::divides' panicked at 'attempt to divide by zero', src/lib.rs:20:9

failures:
    tests::divides
    tests::subtracts

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: test failed, to rerun pass `--lib`
";
    let v = only(log, TestFailure);
    assert_eq!(v.len(), 2, "{v:#?}");
    let sub = v
        .iter()
        .find(|i| i.details["test"] == "tests::subtracts")
        .unwrap();
    assert_eq!(sub.severity, Severity::High);
    assert_eq!(sub.location.as_deref(), Some("src/lib.rs:10:5"));
    assert_eq!(
        sub.root_cause.as_deref(),
        Some("assertion: left 2, right 3")
    );
    assert!(sub.impact.contains("2 of 3 tests failed"), "{}", sub.impact);
    assert!(
        sub.fix.contains("cargo test tests::subtracts"),
        "{}",
        sub.fix
    );
    let div = v
        .iter()
        .find(|i| i.details["test"] == "tests::divides")
        .unwrap();
    assert_eq!(div.location.as_deref(), Some("src/lib.rs:20:9"));
    assert_eq!(div.root_cause.as_deref(), Some("attempt to divide by zero"));
    assert!(only(log, Crash).is_empty() && only(log, RuntimeException).is_empty());
    assert!(only(log, CompileError).is_empty());
}

#[test]
fn pytest_failures_merge_header_and_summary() {
    let log = "\
============================= test session starts ==============================
collected 15 items

tests/test_orders.py ..F.......F....                                      [100%]

=================================== FAILURES ===================================
_________________________________ test_total __________________________________

    def test_total():
        order = make_order()
>       assert order.total() == 3
E       assert 2 == 3
E        +  where 2 = <bound method Order.total of <Order 1>>()

tests/test_orders.py:12: AssertionError
______________________________ test_discount ________________________________

    def test_discount():
>       apply_discount(None)

tests/test_orders.py:30: 
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ 

order = None

    def apply_discount(order):
>       return order.total * 0.9
E       AttributeError: 'NoneType' object has no attribute 'total'

app/orders.py:8: AttributeError
=========================== short test summary info ============================
FAILED tests/test_orders.py::test_total - assert 2 == 3
FAILED tests/test_orders.py::test_discount - AttributeError: 'NoneType' object has no attribute 'total'
========================= 2 failed, 13 passed in 0.12s =========================
";
    let v = only(log, TestFailure);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(v[0].details["test"], "test_total");
    assert_eq!(v[0].location.as_deref(), Some("tests/test_orders.py:12"));
    assert!(v[0]
        .root_cause
        .as_deref()
        .unwrap()
        .starts_with("assertion: assert 2 == 3"));
    assert!(
        v[0].impact.contains("2 of 15 tests failed"),
        "{}",
        v[0].impact
    );
    assert_eq!(v[0].log_line, 7);
    assert_eq!(v[1].location.as_deref(), Some("app/orders.py:8"));
    assert!(v[1].details["stackTrace"].contains("tests/test_orders.py:30"));
    assert!(only(log, RuntimeException).is_empty());
}

#[test]
fn surefire_junit4_and_junit5() {
    let log = "\
[INFO] Running com.x.FooTest
[ERROR] Tests run: 3, Failures: 1, Errors: 1, Skipped: 0, Time elapsed: 0.05 s <<< FAILURE! - in com.x.FooTest
[ERROR] testFoo(com.x.FooTest)  Time elapsed: 0.01 s  <<< FAILURE!
java.lang.AssertionError: expected:<1> but was:<2>
\tat org.junit.Assert.fail(Assert.java:89)
\tat org.junit.Assert.failNotEquals(Assert.java:835)
\tat com.x.FooTest.testFoo(FooTest.java:25)
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)

[ERROR] testBar(com.x.FooTest)  Time elapsed: 0 s  <<< ERROR!
java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"name\" is null
\tat com.x.Foo.size(Foo.java:14)
\tat com.x.FooTest.testBar(FooTest.java:31)

[INFO] Results:
[INFO]
[ERROR] Failures: 
[ERROR]   FooTest.testFoo:25 expected:<1> but was:<2>
[ERROR] Errors: 
[ERROR]   FooTest.testBar:31 » NullPointer Cannot invoke \"String.length()\" because \"name\" is null
[INFO]
[ERROR] Tests run: 3, Failures: 1, Errors: 1, Skipped: 0
";
    let v = only(log, TestFailure);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(v[0].details["test"], "testFoo");
    assert_eq!(v[0].details["class"], "FooTest");
    assert_eq!(v[0].location.as_deref(), Some("FooTest.java:25"));
    assert_eq!(
        v[0].root_cause.as_deref(),
        Some("assertion: expected 1, got 2")
    );
    assert!(v[0].details["stackTrace"].contains("FooTest.java:25"));
    assert!(
        v[0].impact.contains("2 of 3 tests failed"),
        "{}",
        v[0].impact
    );
    assert!(
        v[0].fix.contains("mvn test -Dtest=FooTest#testFoo"),
        "{}",
        v[0].fix
    );
    assert_eq!(v[1].location.as_deref(), Some("Foo.java:14"));
    assert_eq!(
        v[1].root_cause.as_deref(),
        Some("\"name\" is null when String.length() is used")
    );
    assert!(
        only(log, RuntimeException).is_empty(),
        "{:#?}",
        only(log, RuntimeException)
    );

    let junit5 = "\
[ERROR] Tests run: 2, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.04 s <<< FAILURE! -- in com.x.CartTest
[ERROR] com.x.CartTest.addsItem -- Time elapsed: 0.012 s <<< FAILURE!
org.opentest4j.AssertionFailedError: expected: <1> but was: <2>
\tat org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)
\tat com.x.CartTest.addsItem(CartTest.java:19)
[ERROR] Failures: 
[ERROR]   CartTest.addsItem:19 expected: <1> but was: <2>
";
    let i = one(junit5, TestFailure);
    assert_eq!(i.location.as_deref(), Some("CartTest.java:19"));
    assert_eq!(
        i.root_cause.as_deref(),
        Some("assertion: expected 1, got 2")
    );
    assert!(i.impact.contains("1 of 2 tests failed"), "{}", i.impact);
}

#[test]
fn jest_failure_with_frames() {
    let log = "\
FAIL src/cart.test.js
  Cart
    \u{2715} adds items (5 ms)
    \u{2713} removes items (1 ms)

  \u{25CF} Cart \u{203A} adds items

    expect(received).toBe(expected) // Object.is equality

    Expected: 2
    Received: 3

      10 |   cart.add(item);
    > 11 |   expect(cart.count()).toBe(2);
         |                        ^

      at Object.<anonymous> (src/cart.test.js:11:24)
      at Promise.then.completed (node_modules/jest-circus/build/utils.js:298:28)

Test Suites: 1 failed, 1 total
Tests:       1 failed, 1 passed, 2 total
";
    let i = one(log, TestFailure);
    assert_eq!(i.details["test"], "adds items");
    assert_eq!(i.location.as_deref(), Some("src/cart.test.js:11:24"));
    assert_eq!(
        i.root_cause.as_deref(),
        Some("assertion: expected 2, received 3")
    );
    assert!(i.impact.contains("1 of 2 tests failed"), "{}", i.impact);
    assert!(i.details["stackTrace"].contains("src/cart.test.js:11:24"));
}

#[test]
fn go_test_failures_keep_the_leaf() {
    let log = "\
=== RUN   TestAdd
--- PASS: TestAdd (0.00s)
=== RUN   TestDiv
=== RUN   TestDiv/by_zero
--- FAIL: TestDiv (0.00s)
    --- FAIL: TestDiv/by_zero (0.00s)
        div_test.go:15: got 1, want 0
--- FAIL: TestMul (0.00s)
    mul_test.go:12: got 1 want 2
FAIL
FAIL\texample.com/calc\t0.003s
";
    let v = only(log, TestFailure);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(v[0].details["test"], "TestDiv/by_zero");
    assert_eq!(v[0].location.as_deref(), Some("div_test.go:15"));
    assert_eq!(v[0].root_cause.as_deref(), Some("got 1, want 0"));
    assert_eq!(v[1].location.as_deref(), Some("mul_test.go:12"));
    assert!(
        v[1].impact.contains("2 of 3 tests failed"),
        "{}",
        v[1].impact
    );
}

#[test]
fn node_test_runner_tap() {
    let log = "\
TAP version 13
# Subtest: adds numbers
not ok 1 - adds numbers
  ---
  duration_ms: 0.61
  location: '/app/test/math.test.js:3:1'
  failureType: 'testCodeFailure'
  error: |-
    Expected values to be strictly equal:
    
    1 !== 2
    
  code: 'ERR_ASSERTION'
  name: 'AssertionError'
  expected: 2
  actual: 1
  operator: 'strictEqual'
  stack: |-
    TestContext.<anonymous> (file:///app/test/math.test.js:4:10)
    Test.runInAsyncScope (node:async_hooks:206:9)
  ...
# Subtest: skipped one
not ok 2 - skipped one # SKIP
1..2
# tests 2
# pass 0
# fail 1
";
    let i = one(log, TestFailure);
    assert_eq!(i.details["test"], "adds numbers");
    assert_eq!(i.location.as_deref(), Some("/app/test/math.test.js:4:10"));
    assert_eq!(i.details["testLocation"], "/app/test/math.test.js:3:1");
    assert_eq!(
        i.root_cause.as_deref(),
        Some("assertion: expected 2, actual 1")
    );
    assert!(i.impact.contains("1 of 2 tests failed"), "{}", i.impact);
}

// ---- runtime exceptions and crashes ------------------------------------------------------

#[test]
fn js_type_error_is_critical_with_user_frame() {
    let log = "\
2024-05-01T10:00:00.000Z ERROR orders: request failed
TypeError: Cannot read properties of undefined (reading 'id')
    at OrdersService.create (/app/node_modules/typeorm/index.js:10:3)
    at OrdersService.create (/app/src/orders.service.ts:42:13)
    at processTicksAndRejections (node:internal/process/task_queues:95:5)
TypeError: Cannot read properties of undefined (reading 'id')
    at OrdersService.create (/app/node_modules/typeorm/index.js:10:3)
    at OrdersService.create (/app/src/orders.service.ts:42:13)
";
    let i = one(log, RuntimeException);
    assert_eq!(i.severity, Severity::Critical);
    assert_eq!(
        i.location.as_deref(),
        Some("/app/src/orders.service.ts:42:13")
    );
    assert_eq!(
        i.root_cause.as_deref(),
        Some("value is undefined when property 'id' is read")
    );
    assert!(i.fix.contains("obj?.id"), "{}", i.fix);
    assert_eq!(i.details["occurrences"], "2");
    assert!(i.impact.contains("2 occurrences"), "{}", i.impact);
    assert!(i.details["stackTrace"].lines().count() == 3);
    let legacy = "TypeError: Cannot read property 'id' of undefined\n    at create (orders.service.ts:42:13)\n";
    let i = one(legacy, RuntimeException);
    assert_eq!(i.location.as_deref(), Some("orders.service.ts:42:13"));
    assert_eq!(
        i.root_cause.as_deref(),
        Some("value is undefined when property 'id' is read")
    );
}

#[test]
fn java_uncaught_exception_with_cause() {
    let log = "\
Exception in thread \"main\" java.lang.IllegalStateException: Failed to start
\tat org.springframework.boot.SpringApplication.run(SpringApplication.java:300)
\tat com.acme.App.main(App.java:12)
Caused by: java.lang.NullPointerException
\tat com.acme.db.Pool.open(Pool.java:40)
\tat com.acme.App.main(App.java:10)
\t... 3 more
";
    let i = one(log, RuntimeException);
    assert_eq!(i.severity, Severity::Critical);
    assert_eq!(i.location.as_deref(), Some("Pool.java:40"));
    assert_eq!(
        i.root_cause.as_deref(),
        Some("caused by java.lang.NullPointerException")
    );
    assert!(i.fix.contains("null check"), "{}", i.fix);
    assert_eq!(i.details["thread"], "main");
    assert!(i.details["stackTrace"].contains("App.java:12"));
}

#[test]
fn python_traceback_innermost_user_frame() {
    let log = "\
Traceback (most recent call last):
  File \"/app/worker.py\", line 30, in <module>
    run()
  File \"/app/worker.py\", line 12, in run
    amount = int(payload[\"amount\"])
  File \"/usr/lib/python3.11/site-packages/x/conv.py\", line 3, in int_
    raise ValueError(v)
ValueError: invalid literal for int() with base 10: 'abc'
";
    let i = one(log, RuntimeException);
    assert_eq!(i.severity, Severity::Critical);
    assert_eq!(i.location.as_deref(), Some("/app/worker.py:12"));
    assert_eq!(
        i.title,
        "ValueError: invalid literal for int() with base 10: 'abc'"
    );
    assert_eq!(i.log_line, 1);
    assert!(i.details["stackTrace"].contains("line 12"));
}

#[test]
fn python_key_error_on_environ_is_a_config_error() {
    let log = "\
Traceback (most recent call last):
  File \"/app/settings.py\", line 4, in <module>
    DB = os.environ[\"DATABASE_URL\"]
  File \"<frozen os>\", line 679, in __getitem__
KeyError: 'DATABASE_URL'
";
    let i = one(log, ConfigError);
    assert_eq!(i.location.as_deref(), Some("/app/settings.py:4"));
    assert!(i.fix.contains("DATABASE_URL"));
}

#[test]
fn rust_panic_outside_tests_is_a_crash() {
    let log = "\
thread 'main' panicked at src/main.rs:7:37:
called `Result::unwrap()` on an `Err` value: Os { code: 2, kind: NotFound, message: \"No such file or directory\" }
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
thread 'tokio-runtime-worker' panicked at src/handler.rs:55:9:
index out of bounds: the len is 3 but the index is 5
";
    let c = one(log, Crash);
    assert_eq!(c.severity, Severity::Critical);
    assert_eq!(c.location.as_deref(), Some("src/main.rs:7:37"));
    assert!(c
        .root_cause
        .as_deref()
        .unwrap()
        .starts_with("unwrap() on an Err value"));
    assert!(
        c.fix.contains("Handle the Err case with ? or match"),
        "{}",
        c.fix
    );
    let r = one(log, RuntimeException);
    assert_eq!(r.severity, Severity::Critical);
    assert_eq!(r.location.as_deref(), Some("src/handler.rs:55:9"));
    assert!(r.fix.contains(".get()"));
}

#[test]
fn rust_panics_with_a_thread_id_are_recognised() {
    // Rust 1.88+ prints the thread id: `thread 'main' (28476) panicked at …`.
    let log = "\
thread 'main' (28476) panicked at src/main.rs:5:26:
called `Option::unwrap()` on a `None` value
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
";
    let c = one(log, Crash);
    assert_eq!(c.location.as_deref(), Some("src/main.rs:5:26"));
    let tests = "\
running 2 tests
test tests::adds ... ok
test tests::subtracts ... FAILED

failures:

---- tests::subtracts stdout ----

thread 'tests::subtracts' (28501) panicked at src/lib.rs:10:5:
assertion `left == right` failed
  left: 2
 right: 3

failures:
    tests::subtracts

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
    let t = one(tests, TestFailure);
    assert_eq!(t.location.as_deref(), Some("src/lib.rs:10:5"));
}

#[test]
fn go_panic_and_fatal_error() {
    let log = "\
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47b0b6]

goroutine 1 [running]:
main.(*Server).handle(0x0, {0x4c2e20, 0xc000012345})
\t/app/server.go:42 +0x16
main.main()
\t/app/main.go:12 +0x25
exit status 2
fatal error: all goroutines are asleep - deadlock!

goroutine 1 [chan receive]:
main.main()
\t/app/wait.go:9 +0x30
";
    let v = only(log, Crash);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(v[0].location.as_deref(), Some("/app/server.go:42"));
    assert_eq!(v[0].root_cause.as_deref(), Some("nil pointer dereference"));
    assert_eq!(v[0].details["signal"], "SIGSEGV");
    assert_eq!(v[1].location.as_deref(), Some("/app/wait.go:9"));
    assert!(v[1].root_cause.as_deref().unwrap().contains("deadlock"));
}

#[test]
fn segfaults_and_aborts() {
    let log = "\
./run.sh: line 3:  4242 Segmentation fault      (core dumped) ./server --port 8080
retrying
retrying
retrying
error: process didn't exit successfully: `target/debug/app` (signal: 11, SIGSEGV: invalid memory reference)
03-17 16:13:47.000  1200  1234 F libc    : Fatal signal 6 (SIGABRT), code -6 in tid 1234 (RenderThread), pid 1200 (com.example.app)
Registered signal handlers for [TERM, HUP, INT]
";
    let v = only(log, Crash);
    assert_eq!(v.len(), 3, "{v:#?}");
    assert!(v.iter().all(|i| i.severity == Severity::Critical));
    assert_eq!(v[0].details["signal"], "SIGSEGV");
    assert_eq!(v[2].details["signal"], "SIGABRT");
    assert_eq!(v[2].details["process"], "com.example.app");
}

#[test]
fn fatal_level_line_with_exception() {
    let log = "\
2015-10-18 18:06:26,029 FATAL [IPC Server handler 13 on 62270] org.apache.hadoop.mapred.TaskAttemptListenerImpl: Task: attempt_1 - exited : java.net.NoRouteToHostException: No Route to Host
2015-10-18 18:06:26,029 INFO [main] Diagnostics: Error: java.net.NoRouteToHostException: No Route to Host
2015-10-18 18:06:28,000 ERROR [main] Job: cleanup failed: java.io.IOException: disk full
";
    let v = only(log, RuntimeException);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(v[0].severity, Severity::Critical);
    assert_eq!(v[0].details["exception"], "java.net.NoRouteToHostException");
    assert_eq!(v[1].severity, Severity::High);
}

#[test]
fn dotnet_unhandled_exception() {
    let log = "\
Unhandled exception. System.NullReferenceException: Object reference not set to an instance of an object.
   at Shop.Orders.Create(Order o) in /src/Shop/Orders.cs:line 42
   at Shop.Program.Main(String[] args) in /src/Shop/Program.cs:line 10
";
    let i = one(log, RuntimeException);
    assert_eq!(i.severity, Severity::Critical);
    assert_eq!(i.location.as_deref(), Some("/src/Shop/Orders.cs:42"));
}

// ---- out of memory ---------------------------------------------------------------------

#[test]
fn oom_kills() {
    let log = "\
[12345.678901] Out of memory: Killed process 1234 (java) total-vm:8123456kB, anon-rss:4012345kB, file-rss:0kB
Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space
\tat java.util.Arrays.copyOf(Arrays.java:3332)
\tat com.acme.Cache.load(Cache.java:88)
FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory
fatal error: runtime: out of memory
memory allocation of 1073741824 bytes failed
api-7d9f5c   0/1     OOMKilled   3          2m
";
    let v = only(log, OutOfMemory);
    assert_eq!(v.len(), 6, "{v:#?}");
    assert!(v.iter().all(|i| i.severity == Severity::Critical));
    assert_eq!(v[0].details["process"], "java");
    assert!(v[0].title.contains("pid 1234"));
    assert_eq!(v[1].location.as_deref(), Some("Cache.java:88"));
    assert!(v[1].fix.contains("-Xmx"));
    assert!(v[2].fix.contains("max-old-space-size"));
    assert!(v[3].fix.contains("pprof"));
    assert!(v[4].title.contains("1073741824"));
    assert_eq!(v[5].details["process"], "api-7d9f5c");
    assert!(only(log, RuntimeException).is_empty());
}

#[test]
fn memory_words_that_are_not_oom() {
    let log = "\
INFO cache hit ratio 0.93, out of memory pressure events: none
free memory: 1234 MB
";
    // "out of memory" in prose without a kill/error shape is not an OOM finding
    let v = only(log, OutOfMemory);
    assert!(v.is_empty(), "{v:#?}");
}

// ---- dependency conflicts --------------------------------------------------------------

#[test]
fn npm_eresolve_block_is_one_insight() {
    let log = "\
npm ERR! code ERESOLVE
npm ERR! ERESOLVE unable to resolve dependency tree
npm ERR! 
npm ERR! While resolving: shop@1.0.0
npm ERR! Found: react@18.2.0
npm ERR! node_modules/react
npm ERR!   react@\"^18.2.0\" from the root project
npm ERR! 
npm ERR! Could not resolve dependency:
npm ERR! peer react@\"^16.8.0 || ^17.0.0\" from react-beautiful-dnd@13.1.1
npm ERR! node_modules/react-beautiful-dnd
npm ERR!   react-beautiful-dnd@\"^13.1.1\" from the root project
npm ERR! 
npm ERR! Fix the upstream dependency conflict, or retry
npm ERR! this command with --force or --legacy-peer-deps
";
    let i = one(log, DependencyConflict);
    assert_eq!(i.severity, Severity::High);
    assert_eq!(i.log_line, 1);
    assert_eq!(i.details["package"], "react");
    assert!(i
        .root_cause
        .as_deref()
        .unwrap()
        .contains("react-beautiful-dnd@13.1.1"));
    assert!(
        i.fix
            .contains("Align the conflicting version ranges of react and react-beautiful-dnd"),
        "{}",
        i.fix
    );
}

#[test]
fn cargo_pip_maven_go_conflicts() {
    let log = "\
error: failed to select a version for `serde`.
    ... required by package `api v0.1.0 (/work/api)`
versions that meet the requirements `=1.0.100` are: 1.0.100

all possible versions conflict with previously selected packages.

  previously selected package `serde v1.0.150`
    ... which satisfies dependency `serde = \"^1.0.150\"` of package `db v0.2.0`

ERROR: Cannot install flask==2.0.0 and werkzeug==3.0.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested werkzeug==3.0.0
    flask 2.0.0 depends on werkzeug>=2.0

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
[ERROR] Failed to execute goal on project app: Could not resolve dependencies for project com.acme:app:jar:1.0: Could not find artifact com.acme:lib:jar:2.0 in central
main.go:5:2: ambiguous import: found package github.com/x/y in multiple modules:
";
    let v = only(log, DependencyConflict);
    assert_eq!(v.len(), 4, "{v:#?}");
    assert_eq!(v[0].details["package"], "serde");
    assert_eq!(
            v[0].root_cause.as_deref(),
            Some("api v0.1.0 (/work/api) requires serde =1.0.100 but serde v1.0.150 was already selected")
        );
    assert!(v[1]
        .title
        .starts_with("pip: cannot install flask==2.0.0 and werkzeug==3.0.0"));
    assert_eq!(v[1].details["package"], "werkzeug");
    assert_eq!(v[2].details["package"], "com.acme:lib:2.0");
    assert_eq!(v[3].details["package"], "github.com/x/y");
    assert!(
        only(log, CompileError).is_empty(),
        "{:#?}",
        only(log, CompileError)
    );
}

// ---- configuration errors --------------------------------------------------------------

#[test]
fn config_errors() {
    let log = "\
Error: Missing required environment variable: DATABASE_URL
yaml: line 12: mapping values are not allowed in this context (config/app.yaml)
Error: ENOENT: no such file or directory, open '/app/.env'
django.core.exceptions.ImproperlyConfigured: SECRET_KEY must not be empty
Error: unknown field `colour`, expected one of `color`, `size` in config.toml
could not read config file /etc/agent/agent.conf: permission denied
";
    let v = only(log, ConfigError);
    assert_eq!(v.len(), 6, "{v:#?}");
    assert_eq!(v[0].details["variable"], "DATABASE_URL");
    assert_eq!(v[0].severity, Severity::High);
    assert!(v[0].fix.contains("Set DATABASE_URL"));
    assert_eq!(v[1].location.as_deref(), Some("config/app.yaml:12"));
    assert_eq!(v[2].details["file"], "/app/.env");
    assert!(v[3].root_cause.as_deref().unwrap().contains("SECRET_KEY"));
    assert_eq!(v[4].severity, Severity::Medium);
    assert_eq!(v[4].details["variable"], "colour");
    assert_eq!(v[5].details["file"], "/etc/agent/agent.conf");
}

#[test]
fn pyyaml_error_names_the_file_on_a_later_line() {
    let log = "\
yaml.scanner.ScannerError: mapping values are not allowed here
  in \"config.yml\", line 3, column 8
";
    let i = one(log, ConfigError);
    assert_eq!(i.location.as_deref(), Some("config.yml:3:8"));
}

#[test]
fn config_words_that_are_not_errors() {
    let log = "\
loaded config from config.yaml (3 keys)
parsed 12 records from data.json in 3ms
env var HOME=/root
";
    assert!(
        only(log, ConfigError).is_empty(),
        "{:#?}",
        only(log, ConfigError)
    );
}

// ---- helpers and caps ------------------------------------------------------------------

#[test]
fn excerpts_are_truncated_on_char_boundaries() {
    let long = format!("TypeError: Cannot read properties of undefined (reading 'id') {}\n    at f (/app/a.js:1:1)\n", "é".repeat(400));
    let i = one(&long, RuntimeException);
    assert!(i.excerpt.chars().count() <= MAX_EXCERPT_CHARS);
    assert!(i.title.chars().count() <= MAX_EXCERPT_CHARS);
}

#[test]
fn insights_are_capped_per_kind() {
    let log: String = (0..30)
        .map(|n| format!("src/f{n}.c:{n}:1: error: use of undeclared identifier 'v{n}'\n"))
        .collect();
    // Per kind, the 20th insight summarises the rest; then the locator keeps the most likely
    // causes (the first errors) and counts what it cut on the last one kept.
    let v = only(&log, CompileError);
    assert_eq!(v.len(), locator::MAX_RANKED);
    assert_eq!(v[0].log_line, 1);
    let last = v.last().unwrap();
    assert_eq!(last.log_line, locator::MAX_RANKED as u32);
    // 13 cut insights, the last of which stood for 11 findings.
    assert_eq!(last.details["more_findings"], "24");
    assert_eq!(v[0].impact, "build blocked: 30 compile errors");
}

#[test]
fn hand_built_log_text_is_scanned_per_line() {
    let owned = ["x".to_owned(), "./main.go:3:1: undefined: y".to_owned()];
    let log = LogText::from_lines("unrelated", owned.iter().map(String::as_str).collect());
    let v = analyse(&log, &AnalyserConfig::default());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].log_line, 2);
}

#[test]
fn ci_timestamps_are_ignored() {
    let log = "2024-01-15T10:00:00.1234567Z error[E0425]: cannot find value `x` in this scope\n2024-01-15T10:00:00.1234568Z  --> src/main.rs:4:5\n";
    let i = one(log, CompileError);
    assert_eq!(i.location.as_deref(), Some("src/main.rs:4:5"));
}

#[test]
fn node_spec_reporter_failures_dedupe() {
    let log = "\
\u{25B6} math
  \u{2714} adds (0.5ms)
  \u{2716} subtracts (1.2ms)
    AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:

    1 !== 2

        at TestContext.<anonymous> (file:///app/test/math.test.js:8:12)
        at Test.runInAsyncScope (node:async_hooks:206:9)
\u{25B6} math (3.1ms)
\u{2139} tests 2
\u{2139} pass 1
\u{2139} fail 1

\u{2716} failing tests:

test at file:///app/test/math.test.js:7:3
\u{2716} subtracts (1.2ms)
  AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:
";
    let i = one(log, TestFailure);
    assert_eq!(i.details["test"], "subtracts");
    assert_eq!(i.location.as_deref(), Some("/app/test/math.test.js:8:12"));
    assert!(i
        .root_cause
        .as_deref()
        .unwrap()
        .starts_with("AssertionError"));
    assert!(i.impact.contains("1 of 2 tests failed"), "{}", i.impact);
}

#[test]
fn jest_console_blocks_are_not_failures() {
    let log = "\
  \u{25CF} Console

    console.log
      loading fixtures

      at Object.<anonymous> (src/setup.js:3:11)

Tests:       4 passed, 4 total
";
    assert!(run(log).is_empty(), "{:#?}", run(log));
}

#[test]
fn go_test_panic_gets_the_panic_location() {
    let log = "\
--- FAIL: TestCheckout (0.00s)
panic: runtime error: index out of range [3] with length 3 [recovered]
\tpanic: runtime error: index out of range [3] with length 3

goroutine 7 [running]:
testing.tRunner.func1.2({0x5f1a40, 0xc000018150})
\t/usr/local/go/src/testing/testing.go:1545 +0x238
example.com/shop/cart.(*Cart).Item(...)
\t/src/shop/cart/cart.go:31
FAIL\texample.com/shop/cart\t0.005s
";
    let t = one(log, TestFailure);
    assert_eq!(t.location.as_deref(), Some("/src/shop/cart/cart.go:31"));
    assert!(t
        .root_cause
        .as_deref()
        .unwrap()
        .starts_with("panic: runtime error"));
    // the panic is the test's failure, not a separate crash
    assert!(only(log, Crash).is_empty());
}

#[test]
fn java_trace_prefers_the_application_package() {
    let log = "\
2024-03-01 10:00:04.789 ERROR 1 --- [main] o.s.boot.SpringApplication : Application run failed

org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'dataSource'
\tat org.springframework.beans.factory.support.ConstructorResolver.instantiate(ConstructorResolver.java:658)
\tat com.acme.ShopApplication.main(ShopApplication.java:10)
Caused by: java.lang.IllegalArgumentException: jdbcUrl is required with driverClassName.
\tat com.zaxxer.hikari.HikariConfig.validate(HikariConfig.java:1029)
\tat com.acme.config.DataSourceConfig.dataSource(DataSourceConfig.java:27)
\t... 18 common frames omitted
";
    let i = one(log, RuntimeException);
    assert_eq!(i.location.as_deref(), Some("DataSourceConfig.java:27"));
    assert_eq!(i.severity, Severity::High);
    assert!(i
        .root_cause
        .as_deref()
        .unwrap()
        .contains("jdbcUrl is required"));
}

#[test]
fn chained_python_exceptions_report_the_last_with_its_cause() {
    let log = "\
[2024-03-01 10:00:05 +0000] [7] [ERROR] Error handling request /checkout
Traceback (most recent call last):
  File \"/app/shop/views.py\", line 88, in checkout
    total = cart[\"total\"]
KeyError: 'total'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/app/shop/middleware.py\", line 21, in __call__
    raise CheckoutError(\"checkout failed\") from None
shop.errors.CheckoutError: checkout failed
[2024-03-01 10:00:06 +0000] [7] [INFO] GET /health 200
";
    let i = one(log, RuntimeException);
    assert_eq!(i.title, "shop.errors.CheckoutError: checkout failed");
    assert_eq!(i.location.as_deref(), Some("/app/shop/middleware.py:21"));
    assert!(i
        .root_cause
        .as_deref()
        .unwrap()
        .contains("while handling KeyError: 'total'"));
    assert_eq!(i.log_line, 2);
}

#[test]
fn js_syntax_error_with_frames_is_a_compile_error() {
    let log = "\
/app/src/config.js:12
  port: 3000,,
             ^

SyntaxError: Unexpected token ','
    at internalCompileFunction (node:internal/vm:76:18)
    at Module._compile (node:internal/modules/cjs/loader:1274:14)
";
    let i = one(log, CompileError);
    assert!(
        i.title.starts_with("SyntaxError: Unexpected token"),
        "{}",
        i.title
    );
    assert!(only(log, RuntimeException).is_empty());
}

#[test]
fn dependency_words_that_are_not_conflicts() {
    let log = "\
added 812 packages, and audited 813 packages in 21s
found 0 vulnerabilities
[INFO] --- maven-enforcer-plugin:3.4.1:enforce (enforce-versions) @ shop ---
[INFO] Rule 0: org.apache.maven.plugins.enforcer.DependencyConvergence passed
Resolving dependencies...
    Updating crates.io index
";
    assert!(run(log).is_empty(), "{:#?}", run(log));
}

#[test]
fn exception_lines_without_frames_need_a_level_or_marker() {
    let log = "\
03-17 16:13:45.466  1702 17632 W ActivityManager: java.lang.ClassCastException: android.os.BinderProxy cannot be cast
INFO retry after java.net.SocketTimeoutException: connect timed out
Exception in thread \"worker-1\" java.lang.IllegalStateException: queue closed
";
    let v = only(log, RuntimeException);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].severity, Severity::Critical);
    assert_eq!(v[0].details["thread"], "worker-1");
}

#[test]
fn env_var_panics_and_compose_warnings_are_config_errors() {
    let log = "\
WARNING: The \"STRIPE_KEY\" variable is not set. Defaulting to a blank string.
thread 'main' panicked at src/main.rs:9:40:
DATABASE_URL must be set: NotPresent
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
2024-05-01 10:00:00,123 CRITICAL [worker] Unhandled error in job 42: ValueError: bad input
";
    let v = only(log, ConfigError);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_eq!(v[0].severity, Severity::Medium);
    assert_eq!(v[0].details["variable"], "STRIPE_KEY");
    assert_eq!(v[1].severity, Severity::High);
    assert_eq!(v[1].details["variable"], "DATABASE_URL");
    assert_eq!(v[1].location.as_deref(), Some("src/main.rs:9:40"));
    assert!(only(log, Crash).is_empty());
    // the panic message is one line: the CRITICAL line after it is still analysed
    let r = one(log, RuntimeException);
    assert_eq!(r.severity, Severity::Critical);
    assert_eq!(r.log_line, 5);
}

#[test]
fn dotnet_build_error_and_missing_node_module() {
    let log = "\
/src/Shop/Foo.cs(12,5): error CS0103: The name 'total' does not exist in the current context [/src/Shop/Shop.csproj]
Error: Cannot find module 'express'
    at Function.Module._resolveFilename (node:internal/modules/cjs/loader:1039:15)
    at Object.<anonymous> (/app/server.js:1:17)
";
    let c = one(log, CompileError);
    assert_eq!(c.location.as_deref(), Some("/src/Shop/Foo.cs:12:5"));
    assert_eq!(c.details["compiler"], "dotnet");
    assert_eq!(c.root_cause.as_deref(), Some("unresolved name `total`"));
    let r = one(log, RuntimeException);
    assert_eq!(r.location.as_deref(), Some("/app/server.js:1:17"));
    assert!(r.fix.starts_with("Install 'express'"), "{}", r.fix);
}

// ---- Go race detector, gunicorn, PostgreSQL, CrashLoopBackOff ---------------------------

const RACE: &str = "\
==================
WARNING: DATA RACE
Write at 0x00c0001a20c8 by goroutine 7:
  example.com/app/counter.(*Counter).Inc()
      /src/app/counter/counter.go:42 +0x64
  example.com/app/counter.TestInc.func1()
      /src/app/counter/counter_test.go:15 +0x38

Previous read at 0x00c0001a20c8 by goroutine 6:
  example.com/app/counter.(*Counter).Get()
      /src/app/counter/counter.go:48 +0x3c

Goroutine 7 (running) created at:
  example.com/app/counter.TestInc()
      /src/app/counter/counter_test.go:13 +0x9c
==================
";

#[test]
fn go_race_report_is_one_runtime_exception() {
    let log = format!("{RACE}--- FAIL: TestInc (0.00s)\n    testing.go:1399: race detected during execution of test\nFAIL\n");
    let r = one(&log, RuntimeException);
    assert_eq!(r.severity, Severity::High);
    assert_eq!(r.log_line, 2);
    assert_eq!(
        r.location.as_deref(),
        Some("/src/app/counter/counter.go:42")
    );
    assert!(r.title.contains("(*Counter).Inc"), "{}", r.title);
    assert!(r
        .root_cause
        .as_deref()
        .unwrap()
        .contains("concurrent unsynchronised access"));
    assert!(
        r.fix.contains("mutex") && r.fix.contains("-race"),
        "{}",
        r.fix
    );
    assert_eq!(
        r.details["accesses"],
        "write by goroutine 7; previous read by goroutine 6"
    );
    assert!(only(&log, Crash).is_empty());
    assert_eq!(only(&log, TestFailure).len(), 1);
}

#[test]
fn go_race_that_ends_the_process_is_a_crash() {
    let log = format!("{RACE}{RACE}Found 2 data race(s)\nexit status 66\n");
    let v = only(&log, Crash);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].severity, Severity::High);
    assert_eq!(v[0].details["occurrences"], "2");
    assert!(only(&log, RuntimeException).is_empty());
}

#[test]
fn race_words_without_a_report_are_not_races() {
    let log = "\
2025-11-06 10:41:05 INFO race: none found
go test -race ./... (data race detection enabled)
WARNING: DATA RACE checks are slow, expect 5-10x runtime
Found 0 data race(s)
";
    let v = run(log);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn go_test_panic_is_only_the_test_failure() {
    let log = "\
--- FAIL: TestExpire (0.00s)
panic: runtime error: invalid memory address or nil pointer dereference [recovered]
\tpanic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x6f3a2e]

goroutine 23 [running]:
testing.tRunner.func1.2({0x71c2a0, 0xa3e5c0})
\t/usr/local/go/src/testing/testing.go:1632 +0x3fc
example.com/app/store.(*Store).Expire(0x0)
\t/src/app/store/store.go:88 +0x2e
example.com/app/store.TestExpire(0xc000103ba0)
\t/src/app/store/store_test.go:31 +0x6a
FAIL\texample.com/app/store\t0.052s
";
    assert!(only(log, Crash).is_empty(), "{:#?}", run(log));
    let t = one(log, TestFailure);
    assert_eq!(t.location.as_deref(), Some("/src/app/store/store.go:88"));
    assert!(t.root_cause.as_deref().unwrap().contains("nil pointer"));
    assert_eq!(t.details["signal"], "SIGSEGV");
    assert!(t.details["stackTrace"].contains("store.go:88"));
}

#[test]
fn gunicorn_worker_timeout_is_one_crash() {
    let log = "\
[2025-11-06 10:45:42 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:9)
[2025-11-06 10:45:43 +0000] [1] [ERROR] Worker (pid:9) was sent SIGKILL! Perhaps out of memory?
[2025-11-06 10:45:43 +0000] [14] [INFO] Booting worker with pid: 14
";
    let v = run(log);
    assert_eq!(v.len(), 1, "{v:#?}");
    let c = &v[0];
    assert_eq!((c.kind, c.severity), (Crash, Severity::Critical));
    assert_eq!(c.log_line, 1);
    assert!(c
        .root_cause
        .as_deref()
        .unwrap()
        .contains("worker exceeded the timeout and was killed"));
    assert!(
        c.fix.contains("--timeout") && c.fix.contains("slow request"),
        "{}",
        c.fix
    );
    assert_eq!(c.details["pid"], "9");
    assert_eq!(c.details["signal"], "SIGKILL");
}

#[test]
fn worker_timeout_in_a_docs_url_is_not_a_crash() {
    let log = "\
[2025-11-06 10:45:00 +0000] [1] [INFO] Starting gunicorn 23.0.0
CRITICAL runbook: https://wiki.example.com/gunicorn?q=[CRITICAL] WORKER TIMEOUT (pid:1234)
see https://docs.gunicorn.org/en/stable/faq.html#WORKER TIMEOUT for tuning
";
    let v = run(log);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn postgres_deadlock_and_connection_slots() {
    let log = "\
2025-11-06 10:45:15.632 UTC [4421] shop_app@shop ERROR:  deadlock detected
2025-11-06 10:45:15.632 UTC [4421] shop_app@shop DETAIL:  Process 4421 waits for ShareLock on transaction 9182734; blocked by process 4413.
\tProcess 4413 waits for ShareLock on transaction 9182731; blocked by process 4421.
\tProcess 4421: UPDATE inventory SET reserved = reserved + $1 WHERE sku = $2
\tProcess 4413: UPDATE inventory SET reserved = reserved + $1 WHERE sku = $2
2025-11-06 10:45:15.632 UTC [4421] shop_app@shop HINT:  See server log for query details.
2025-11-06 10:45:15.632 UTC [4421] shop_app@shop CONTEXT:  while updating tuple (8812,14) in relation \"inventory\"
2025-11-06 10:45:15.632 UTC [4421] shop_app@shop STATEMENT:  UPDATE inventory SET reserved = reserved + $1 WHERE sku = $2
2025-11-06 10:45:24.765 UTC [4428] shop_app@shop FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute
2025-11-06 10:45:25.003 UTC [4429] shop_app@shop FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute
2025-11-06 10:45:26.100 UTC [4430] app@shop FATAL:  sorry, too many clients already
";
    let v = only(log, RuntimeException);
    // both connection-slot messages are one finding
    assert_eq!(v.len(), 2, "{v:#?}");
    let d = &v[0];
    assert_eq!((d.severity, d.log_line), (Severity::High, 1));
    assert_eq!(d.details["processes"], "4421, 4413");
    assert_eq!(d.details["relations"], "inventory");
    assert_eq!(d.details["lockTypes"], "ShareLock");
    assert!(
        d.title.contains("between processes 4421 and 4413"),
        "{}",
        d.title
    );
    assert!(d.fix.contains("same order"), "{}", d.fix);
    let s = &v[1];
    assert_eq!((s.severity, s.log_line), (Severity::High, 9));
    assert_eq!(s.details["occurrences"], "3");
    assert_eq!(s.details["user"], "shop_app");
    assert!(
        s.fix.contains("PgBouncer") && s.fix.contains("max_connections"),
        "{}",
        s.fix
    );
    assert!(s.excerpt.contains("remaining connection slots"));
}

#[test]
fn postgres_config_dump_is_not_a_deadlock() {
    let log = "\
2025-11-06 10:44:00.000 UTC [1] LOG:  parameter \"deadlock_timeout\" changed to \"1s\"
deadlock_timeout = 1s
log_lock_waits = on   # logs waits longer than deadlock_timeout; a deadlock detected is logged as ERROR
max_connections = 100   # FATAL:  sorry, too many clients already when exceeded
superuser_reserved_connections = 3
";
    let v = run(log);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn crashloop_without_a_cause_is_a_crash() {
    let log = "\
+ kubectl -n orders get pods -l app=orders-api
NAME                          READY   STATUS             RESTARTS      AGE
orders-api-7f9c6d5b8-x2kqp    0/1     CrashLoopBackOff   5 (38s ago)   5m2s
    State:          Waiting
      Reason:       CrashLoopBackOff
    Last State:     Terminated
      Reason:       Error
      Exit Code:    1
  Warning  BackOff    8s (x21 over 4m11s)   kubelet            Back-off restarting failed container orders-api in pod orders-api-7f9c6d5b8-x2kqp_orders(3c1d8e2a-7b4f-4e9a-a6d0-5f2c9b8e1a74)
";
    let c = one(log, Crash);
    assert_eq!(c.severity, Severity::High);
    assert_eq!(c.log_line, 3);
    assert_eq!(c.details["pod"], "orders-api-7f9c6d5b8-x2kqp");
    assert_eq!(c.details["container"], "orders-api");
    assert_eq!(c.details["namespace"], "orders");
    assert!(
        c.title.contains("orders-api-7f9c6d5b8-x2kqp"),
        "{}",
        c.title
    );
    assert!(c.fix.contains("--previous"), "{}", c.fix);
}

#[test]
fn crashloop_with_an_oom_kill_is_left_to_the_oom() {
    let log = "\
orders-api-7f9c6d5b8-x2kqp    0/1     CrashLoopBackOff   5 (38s ago)   5m2s
      Reason:       OOMKilled
  Warning  BackOff    8s (x21 over 4m11s)   kubelet   Back-off restarting failed container orders-api in pod orders-api-7f9c6d5b8-x2kqp_orders(3c1d8e2a)
";
    assert!(only(log, Crash).is_empty(), "{:#?}", run(log));
    assert_eq!(only(log, OutOfMemory).len(), 1);
    let benign = "\
alert KubePodCrashLooping docs: https://runbooks.example.com/kubernetes/#CrashLoopBackOff
CrashLoopBackOff pods: 0
";
    let v = run(benign);
    assert!(v.is_empty(), "{v:#?}");
}

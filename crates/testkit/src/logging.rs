//! Tracing for tests, and failing tests that log at ERROR (STYLE §4).
//!
//! ERROR events are counted per thread: a simulation runs on its test's thread, and
//! libtest gives every test its own thread, so parallel tests do not see each other's
//! errors. Events logged on other threads are not counted.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// Fails the test, when dropped, if an ERROR was logged on this thread since it was
/// made and not taken by [`expect_errors`].
///
/// Made by [`deny_errors`]; a [`Sim`](crate::Sim) holds one.
#[derive(Debug)]
#[must_use = "the guard checks for errors when it is dropped"]
pub struct ErrorGuard {
    _private: (),
}

thread_local! {
    /// ERROR events logged on this thread since the last reset, formatted.
    static ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

static INIT: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the test subscriber once per process; later calls do nothing.
///
/// Output goes through libtest's capture (shown for failing tests), filtered by
/// `RUST_LOG` (default `info`). ERROR events are counted whatever `RUST_LOG` says. When
/// another global subscriber was installed first, a warning is printed and errors are
/// not counted.
pub fn init_tracing() {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let fmt = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_ansi(false)
            .with_filter(filter);
        let counter = ErrorCounter.with_filter(LevelFilter::ERROR);
        match tracing_subscriber::registry()
            .with(fmt)
            .with(counter)
            .try_init()
        {
            Ok(()) => INSTALLED.store(true, Ordering::Release),
            Err(e) => eprintln!("ringwire-testkit: ERROR events will not be counted: {e}"),
        }
    });
}

/// Initializes tracing, forgets earlier errors on this thread, and returns a guard that
/// fails the test if an ERROR is logged and not expected before the guard is dropped.
pub fn deny_errors() -> ErrorGuard {
    init_tracing();
    ERRORS.with(|errors| errors.borrow_mut().clear());
    ErrorGuard { _private: () }
}

/// How many ERROR events this thread logged that nobody has expected yet.
pub fn error_count() -> usize {
    ERRORS.with(|errors| errors.borrow().len())
}

/// Asserts that this thread logged no ERROR event that nobody expected.
///
/// # Panics
///
/// When it did, listing the events.
#[track_caller]
pub fn assert_no_errors() {
    let errors = ERRORS.with(|errors| errors.borrow().clone());
    assert!(
        errors.is_empty(),
        "unexpected ERROR events (use expect_errors if they are intended):\n  {}",
        errors.join("\n  ")
    );
}

/// Takes the ERROR events this thread logged since the last check, asserting there are
/// exactly `count`; returns them (`target: message fields`) for further assertions.
///
/// # Panics
///
/// When the number differs, listing the events.
#[track_caller]
pub fn expect_errors(count: usize) -> Vec<String> {
    let errors = ERRORS.with(|errors| std::mem::take(&mut *errors.borrow_mut()));
    assert!(
        errors.len() == count,
        "expected {count} ERROR events, got {}:\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
    errors
}

impl Drop for ErrorGuard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_no_errors();
        }
    }
}

/// Records every ERROR event in this thread's list.
struct ErrorCounter;

impl<S: Subscriber> Layer<S> for ErrorCounter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let mut fields = FieldWriter::default();
        event.record(&mut fields);
        let line = format!(
            "{}: {}{}",
            event.metadata().target(),
            fields.message,
            fields.rest
        );
        // `try_with`: an event logged while the thread is being torn down is dropped
        // rather than panicking inside the subscriber.
        let _ = ERRORS.try_with(|errors| errors.borrow_mut().push(line));
    }
}

/// Collects an event's message and its other fields (` key=value ..`).
#[derive(Default)]
struct FieldWriter {
    message: String,
    rest: String,
}

impl Visit for FieldWriter {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Writing to a String cannot fail.
        let _ = if field.name() == "message" {
            write!(self.message, "{value:?}")
        } else {
            write!(self.rest, " {}={value:?}", field.name())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_on_this_thread_only() {
        let _guard = deny_errors();
        tracing::warn!("a warning is fine");
        tracing::error!(code = 7, "boom");
        std::thread::spawn(|| tracing::error!("elsewhere"))
            .join()
            .unwrap();
        assert_eq!(error_count(), 1);
        let errors = expect_errors(1);
        assert!(errors[0].ends_with(": boom code=7"), "{errors:?}");
        assert_no_errors();
    }

    #[test]
    #[should_panic(expected = "unexpected ERROR events")]
    fn guard_fails_a_test_that_logs_an_error() {
        let _guard = deny_errors();
        tracing::error!("not expected");
    }

    #[test]
    #[should_panic(expected = "expected 2 ERROR events, got 1")]
    fn expect_errors_checks_the_count() {
        let _guard = deny_errors();
        tracing::error!("only one");
        let _ = expect_errors(2);
    }

    #[test]
    fn init_is_idempotent() {
        init_tracing();
        init_tracing();
        assert!(INSTALLED.load(Ordering::Acquire));
    }
}

//! Logging set-up: one `tracing` subscriber writing to stderr (human-readable
//! or JSON lines), and a panic hook that sends panics through it.

use std::any::Any;
use std::io::IsTerminal as _;
use std::sync::Once;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber and the panic hook. `filter` is the
/// configured `log.filter`; a non-empty `RUST_LOG` wins over it, as every
/// Rust developer expects. Calling it again (tests, or a library user that
/// set up its own subscriber) changes nothing and does not fail.
pub fn init(format: LogFormat, filter: &str) {
    // The configuration has validated `filter`; the fallback only serves
    // callers that pass a filter of their own.
    let configured = || EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let mut rejected_rust_log = None;
    let env_filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
            Ok(env_filter) => env_filter,
            Err(error) => {
                rejected_rust_log = Some((value, error));
                configured()
            }
        },
        _ => configured(),
    };

    // stderr, so that stdout stays clean for commands such as `check-config`.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    // The default (full) format rather than `.pretty()`: one line per event
    // stays readable when a daemon logs many events per second.
    let installed = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .is_ok();

    // Said through the new subscriber, so only once and only when it is ours.
    if let (true, Some((value, error))) = (installed, rejected_rust_log) {
        tracing::warn!(rust_log = %value, %error, "RUST_LOG is not a valid filter; using log.filter");
    }

    install_panic_hook();
}

/// Routes panics through `tracing`, so that an actor that panics (ractor
/// catches it and only the default hook prints it, as plain text on stderr)
/// shows up in the JSON logs with the rest. The previous hook still runs
/// afterwards. Installed once, however often `init` is called, so that
/// hooks do not stack up and log each panic several times.
fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(ToString::to_string).unwrap_or_default();
            let thread = std::thread::current();
            tracing::error!(
                panic.message = panic_message(info.payload()),
                panic.location = %location,
                thread = thread.name().unwrap_or("<unnamed>"),
                "panic",
            );
            previous(info);
        }));
    });
}

/// The text of a `panic!`: a `&str` for literals, a `String` when formatted.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn telemetry_init_is_idempotent() {
        // "off": this installs the test binary's global subscriber, and other
        // tests' log lines would otherwise land on the terminal.
        init(LogFormat::Json, "off");
        init(LogFormat::Pretty, "debug");
        init(LogFormat::Pretty, "not a filter =");
    }

    #[test]
    fn telemetry_panics_are_logged_through_tracing() {
        install_panic_hook();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        // A thread-local subscriber: the hook runs on the panicking thread,
        // and other tests running in parallel stay out of this buffer.
        tracing::subscriber::with_default(subscriber, || {
            let caught = std::panic::catch_unwind(|| panic!("actor blew up: {}", 42));
            assert!(caught.is_err());
        });
        let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("actor blew up: 42"), "{logged}");
        assert!(logged.contains("\"level\":\"ERROR\""), "{logged}");
        assert!(logged.contains("telemetry.rs"), "{logged}");
    }
}

//! The panic hook: a panic is logged as one line through `tracing` instead of a backtrace on stderr.

/// Panics are bugs: log where, as one line, and let catch-panic answer 500. No backtrace on stderr.
pub(super) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(non-text payload)");
        tracing::error!(target: "panic", "panic at {location}: {payload}");
    }));
}

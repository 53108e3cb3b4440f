//! Where every log line goes: tracing-appender's non-blocking writer in front of a buffered stderr. Request
//! threads only queue a line; one writer thread takes the queued lines in order, buffers them and writes the batch
//! with one `write(2)` whenever the queue runs dry, so a burst of requests costs a few writes, not one each.
//! Access lines and `tracing`'s lines share the queue, so stderr shows them in the order they were logged.

use std::{
    io::Write as _,
    sync::{Mutex, OnceLock},
};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// The writer of the running process, set by [`start`].
static WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// Flushes and stops the writer thread when dropped; [`stop`] drops it before the process exits.
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Lines queued at most; past it a logging thread waits (lines are never dropped) rather than memory growing.
const QUEUED_LINES: usize = 128_000;

/// Starts the writer thread (once per process) and returns the writer `tracing` formats into.
pub(super) fn start() -> NonBlocking {
    WRITER
        .get_or_init(|| {
            let (writer, guard) = NonBlockingBuilder::default()
                .lossy(false)
                .buffered_lines_limit(QUEUED_LINES)
                .thread_name("log-writer")
                .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
            *GUARD.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
            writer
        })
        .clone()
}

/// Queues `line` (one or more whole lines) behind every line logged before it; dropped before [`start`].
pub(super) fn write(line: &[u8]) {
    if let Some(writer) = WRITER.get() {
        // Err only when the writer thread is gone (after `stop`): the line has nowhere to go.
        let _ = writer.clone().write_all(line);
    }
}

/// Writes out every queued line and stops the writer thread; lines logged later are dropped. `main` calls it
/// (through `telemetry::flush`) before exiting.
pub(super) fn stop() {
    drop(GUARD.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
}

//! Where every log line goes: a buffered sink in front of stderr, written by hand. Access lines (one per request,
//! the hot path) are appended to a buffer that a background thread flushes every 100 ms, instead of one `write(2)`
//! each; every other line (from `tracing`) is written at once, after whatever access lines are pending, so the
//! order on stderr holds.
//!
//! tracing-appender's non-blocking writer would do the same job as a kept crate; measured with `bench/profile`
//! it costs more than the 3% of a greeting v1 request the project accepts for it (a copy and a channel send per
//! line on the request thread, a wake-up and a write per line on its writer thread when requests come one at a
//! time), so this stays. The figures: `bench/results/profile.md`, "The log sink".

use std::{
    cell::Cell,
    io::Write as _,
    sync::{
        Mutex, MutexGuard, Once,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Writes out the access lines still buffered. `main` calls it (through `telemetry::flush`) before exiting; the
/// flusher does every 100 ms.
pub(super) fn flush() {
    write_out(&[]);
}

/// Access lines wait here for the flusher: one `write(2)` per request was the largest cost of a cheap request
/// after formatting, and batching makes it a few per second. Other lines pass through at once (see `SinkWriter`).
/// Lines still here are lost if the process is killed (SIGKILL, out of memory); a normal exit flushes them.
static SINK: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Held while a batch is written, so batches reach stderr in the order they were taken. Taken before `SINK`,
/// never the other way round; `SINK` itself is held only to append or to take the buffer, never during a write,
/// so a slow log reader stalls the writer, not every request.
static WRITING: Mutex<()> = Mutex::new(());

/// Flush early past this size, so that a burst cannot grow the buffer without bound between ticks.
const SINK_FLUSH_BYTES: usize = 64 * 1024;

/// How long an access line may wait in the buffer.
const SINK_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

thread_local! {
    /// Set while this thread holds the sink's locks: a line logged then (say, by the panic hook) goes straight to
    /// stderr instead of waiting for a lock this thread already holds.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Set by `start(direct: true)`: access lines are written at once, not batched.
static DIRECT: AtomicBool = AtomicBool::new(false);

/// A failed write may have cut a line; the next batch starts on a fresh line so the following ones stay whole.
static CUT_LINE: AtomicBool = AtomicBool::new(false);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves at worst a partial line; logging must go on.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Appends an access line; writes the batch out when it has grown past `SINK_FLUSH_BYTES`, or at once when
/// the sink was started `direct`.
pub(super) fn append(format_line: impl FnOnce(&mut Vec<u8>)) {
    let full = in_sink(|| {
        let mut buffer = lock(&SINK);
        format_line(&mut buffer);
        buffer.len() >= SINK_FLUSH_BYTES || DIRECT.load(Ordering::Relaxed)
    });
    if full {
        flush();
    }
}

/// Takes the pending lines, adds `line`, and writes them to stderr outside the buffer's lock.
fn write_out(line: &[u8]) {
    if IN_SINK.with(Cell::get) {
        let _ = std::io::stderr().write_all(line);
        return;
    }
    in_sink(|| {
        let _writing = lock(&WRITING);
        let mut batch = std::mem::take(&mut *lock(&SINK));
        batch.extend_from_slice(line);
        if batch.is_empty() {
            return;
        }
        if CUT_LINE.swap(false, Ordering::Relaxed) {
            batch.insert(0, b'\n');
        }
        // Nowhere to report a failing stderr; the lines are dropped rather than kept forever.
        if std::io::stderr().lock().write_all(&batch).is_err() {
            CUT_LINE.store(true, Ordering::Relaxed);
        }
    });
}

fn in_sink<R>(work: impl FnOnce() -> R) -> R {
    IN_SINK.with(|flag| flag.set(true));
    let result = work();
    IN_SINK.with(|flag| flag.set(false));
    result
}

/// Starts the flusher thread, once per process; `direct` (tests) starts none and writes access lines at once
/// instead, since a test process ends without flushing. The first call decides.
pub(super) fn start(direct: bool) {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| DIRECT.store(direct, Ordering::Relaxed));
    if !DIRECT.load(Ordering::Relaxed) {
        start_flusher();
    }
}

fn start_flusher() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new().name("log-flush".into()).spawn(|| {
            loop {
                std::thread::sleep(SINK_FLUSH_INTERVAL);
                flush();
            }
        });
        if let Err(error) = spawned {
            // Without the thread, access lines still go out whenever the buffer fills or another line is logged.
            tracing::warn!("cannot start the log flusher thread: {error}");
        }
    });
}

/// `tracing`'s writer: appends a formatted line behind any pending access lines and writes them all out.
pub(super) struct SinkWriter;

impl std::io::Write for SinkWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        write_out(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

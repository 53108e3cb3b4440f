//! Gives memory back to the operating system after a spike. glibc's allocator keeps what it freed for reuse and
//! returns it only from the top of each heap, so after thousands of connections close, one long-lived allocation
//! above them pins the high-water mark: a replica that once saw a burst would keep it until restarted (or
//! killed by its memory limit). A task looks every few seconds and trims when the allocator holds more than a
//! few MiB it does not use.
//!
//! Why glibc with a trim rather than another allocator (`./bench/allocators`, `bench/results/allocators.md`, one
//! run, 8,000 connections): glibc plus this task is back at 1.07× its idle RSS 5 s after the spike, with the
//! lowest idle RSS (15.4 MiB) and no C code to build; jemalloc (the `jemalloc` feature) serves greeting v1
//! about 10% faster and needs less per connection, but idles 2.3 MiB higher and takes 30 s to come back to
//! 1.16× idle; mimalloc kept its spike (150 MiB 30 s after). The other two stay as features for that comparison
//! and for deployments that trade idle memory for throughput.

use std::time::Duration;

/// How often the allocator is asked how much free memory it holds. The trim runs only when that is more than
/// [`TRIM_ABOVE_FREE_BYTES`], so a steady load pays one `mallinfo2` call per period.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Free heap above which the allocator is trimmed: far above what a steady load keeps for reuse, far below a
/// spike's worth (thousands of connections at about 12 KiB each).
const TRIM_ABOVE_FREE_BYTES: usize = 4 * 1024 * 1024;

/// Starts the trimming task on the current runtime; `None` where there is nothing to trim (another allocator).
pub fn spawn_trimmer() -> Option<tokio::task::JoinHandle<()>> {
    if !cfg!(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc"), not(feature = "mimalloc"))) {
        return None;
    }
    Some(tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if free_heap_bytes() > TRIM_ABOVE_FREE_BYTES {
                // Walks every arena under its lock: milliseconds after a spike, on a blocking thread so no
                // worker stalls behind it.
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    }))
}

/// Bytes the allocator holds free (in its heaps, not counting memory already given back).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's statistics have no safe binding")]
fn free_heap_bytes() -> usize {
    // SAFETY: mallinfo2 has no preconditions; it only reads the allocator's statistics.
    unsafe { libc::mallinfo2() }.fordblks
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_heap_bytes() -> usize {
    0
}

/// Returns every whole free page of every arena to the kernel (`madvise(MADV_DONTNEED)`), not only the top.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "malloc_trim has no safe binding")]
fn trim() {
    // SAFETY: malloc_trim has no preconditions and is thread-safe (it takes each arena's lock).
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!("returned free heap to the system: {}", released != 0);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu", not(feature = "jemalloc"), not(feature = "mimalloc")))]
mod tests {
    use super::*;

    fn anonymous_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("reads /proc/self/status");
        let line = status.lines().find(|line| line.starts_with("RssAnon:")).expect("an RssAnon line");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("a number")
    }

    #[test]
    fn a_spike_s_freed_heap_is_counted_and_given_back() {
        // 32 MiB in connection-sized pieces (half of one of glibc's thread heaps), written so they are resident,
        // then one small allocation above them that stays: the shape of a spike glibc does not return by itself.
        let mut spike: Vec<Vec<u8>> = (0..4 * 1024).map(|_| vec![1_u8; 8 * 1024]).collect();
        let pin = std::hint::black_box(Box::new([2_u8; 64]));
        let before_free = anonymous_rss_kib();
        spike.clear();
        spike.shrink_to_fit();
        assert!(free_heap_bytes() > 30 * 1024 * 1024, "freed heap counted: {}", free_heap_bytes());
        let held = anonymous_rss_kib();
        assert!(held + 8 * 1024 > before_free, "glibc kept the freed pages before the trim: {held} KiB");
        trim();
        let after = anonymous_rss_kib();
        assert!(after + 24 * 1024 < held, "the trim gave back at least 24 MiB: {held} KiB -> {after} KiB");
        assert_eq!(pin[0], 2);
    }
}

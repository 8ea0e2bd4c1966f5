//! The resident memory of a process, read from `/proc/<pid>/status` (Linux).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The resident set size (`VmRSS`) of process `pid`, in bytes; `None` once the process
/// is gone or on a system without `/proc`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    // "VmRSS:	   12345 kB"
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Samples a process's resident memory on a background thread every `every`, keeping
/// the largest value seen, until [`RssSampler::stop`].
pub struct RssSampler {
    max: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What a sampler saw.
#[derive(Clone, Copy, Debug)]
pub struct RssSummary {
    /// The largest resident set size sampled, in bytes.
    pub max: u64,
    /// How many samples were taken.
    pub samples: u64,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        let max = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (max, samples, stop) = (max.clone(), samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_bytes(pid) {
                        max.fetch_max(rss, Ordering::Relaxed);
                        samples.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(every);
                }
            })
        };
        RssSampler {
            max,
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The largest value so far, without stopping.
    pub fn max_so_far(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Stops sampling (after one last sample) and returns what was seen.
    pub fn stop(mut self) -> RssSummary {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        RssSummary {
            max: self.max.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

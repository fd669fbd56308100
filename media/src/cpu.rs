//! CPU use of worker threads, read from `/proc/self/task/<tid>/stat`.
//!
//! mediasoup's Rust workers are threads of this process, so their CPU time is the
//! thread's `utime + stime` (fields 14 and 15, in clock ticks). The percentage is
//! the tick delta over the wall-clock delta between two samples.

use std::collections::HashMap;
use std::time::Instant;

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on every Linux ABI we run on).
const TICKS_PER_SECOND: f64 = 100.0;
/// The shortest window a CPU figure is measured over.
pub const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Total CPU ticks (user + system) a thread of this process has used.
pub fn thread_ticks(thread_id: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{thread_id}/stat")).ok()?;
    parse_ticks(&stat)
}

/// Parses utime + stime out of a `stat` line (the command name may hold spaces
/// and parentheses, so fields are counted after its closing parenthesis).
fn parse_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Turns successive tick readings into CPU percentages (of one core).
#[derive(Debug, Default)]
pub struct CpuSampler {
    last: HashMap<i32, (u64, Instant)>,
}

impl CpuSampler {
    /// CPU percent of `thread_id` since the previous sample (None on the first
    /// sample or if the thread is gone).
    pub fn sample(&mut self, thread_id: i32, now: Instant) -> Option<f32> {
        let ticks = thread_ticks(thread_id)?;
        let Some(&(last_ticks, last_at)) = self.last.get(&thread_id) else {
            self.last.insert(thread_id, (ticks, now));
            return None;
        };
        // Ticks are 10 ms: a short window turns one burst into a high load
        // (a status call every 50 ms made an idle node look saturated and
        // answer "busy"). Shorter calls keep the previous figure.
        let elapsed = now.saturating_duration_since(last_at).as_secs_f64();
        if elapsed < MIN_WINDOW.as_secs_f64() {
            return None;
        }
        self.last.insert(thread_id, (ticks, now));
        let busy = ticks.saturating_sub(last_ticks) as f64 / TICKS_PER_SECOND;
        Some((busy / elapsed * 100.0) as f32)
    }

    /// Forgets a thread (its worker closed).
    pub fn forget(&mut self, thread_id: i32) {
        self.last.remove(&thread_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_even_with_odd_names() {
        let stat = "1234 (mediasoup (w) 1) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_ticks(stat), Some(300));
        assert_eq!(parse_ticks("garbage"), None);
    }

    /// Starts a thread that spins (or sleeps) until told to stop; returns its tid.
    fn worker(spin: bool) -> (i32, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name()?.to_str()?.parse::<i32>().ok())
                .expect("tid");
            tid_tx.send(tid).expect("send tid");
            let mut x = 0u64;
            while stop_rx.try_recv().is_err() {
                if spin {
                    x = x.wrapping_mul(31).wrapping_add(7);
                    std::hint::black_box(x);
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        });
        (tid_rx.recv().expect("tid"), stop_tx, handle)
    }

    #[test]
    fn measures_a_busy_thread_against_an_idle_one() {
        let (busy, stop_busy, busy_thread) = worker(true);
        let (idle, stop_idle, idle_thread) = worker(false);
        let mut sampler = CpuSampler::default();
        let start = Instant::now();
        assert_eq!(sampler.sample(busy, start), None, "first sample has no baseline");
        assert_eq!(sampler.sample(idle, start), None);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(sampler.sample(busy, Instant::now()), None, "under the window: no new figure");
        std::thread::sleep(MIN_WINDOW.saturating_sub(start.elapsed()) + std::time::Duration::from_millis(50));
        let now = Instant::now();
        let busy_percent = sampler.sample(busy, now).expect("a figure over the whole window");
        let idle_percent = sampler.sample(idle, now).expect("a figure over the whole window");
        for (stop, thread) in [(stop_busy, busy_thread), (stop_idle, idle_thread)] {
            stop.send(()).expect("stop");
            thread.join().expect("join");
        }
        // How much CPU a spinning thread gets depends on what else runs (tests
        // in parallel on two cores): it must show clearly, and an idle one not.
        assert!(busy_percent >= 10.0, "a spinning thread shows its CPU: {busy_percent}");
        assert!(idle_percent <= 3.0, "a sleeping thread shows next to none: {idle_percent}");
    }
}

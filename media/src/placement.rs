//! Which worker gets the next router or consumer (policy only; no mediasoup).
//!
//! Mafalda packs: it prefers the **most** loaded worker that is still under the
//! watermark, so routers and pipes stay few and media forms a tree; a new worker
//! is used only when every worker is over the watermark.

/// What placement needs to know about one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLoadView {
    /// Index of the worker in the pool.
    pub index: usize,
    /// CPU percent of its thread (one core = 100).
    pub cpu_percent: f32,
    /// Consumers on it.
    pub consumers: u32,
}

/// The packing policy and its limits.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlacementPolicy {
    /// Fraction of capacity (CPU and consumers) above which a worker is "full" (default 0.6).
    pub watermark: f32,
    /// Consumers a worker is meant to carry at most (mediasoup's guidance: about 500).
    pub consumer_capacity: u32,
}

impl Default for PlacementPolicy {
    fn default() -> Self {
        Self { watermark: 0.6, consumer_capacity: 500 }
    }
}

/// Where to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On this existing worker (index into the pool).
    Existing(usize),
    /// Start a new worker for it.
    NewWorker,
}

impl PlacementPolicy {
    /// Whether `worker` is under the watermark on both CPU and consumers.
    pub fn has_room(&self, worker: &WorkerLoadView) -> bool {
        let consumer_limit = self.consumer_capacity as f32 * self.watermark;
        worker.cpu_percent < self.watermark * 100.0 && (worker.consumers as f32) < consumer_limit
    }

    /// Whether `worker` is below its full capacity: under a whole core of CPU
    /// and under `consumer_capacity` consumers. Over the watermark a node
    /// sends newcomers elsewhere when it can; at full capacity it takes none.
    pub fn below_capacity(&self, worker: &WorkerLoadView) -> bool {
        worker.cpu_percent < 100.0 && worker.consumers < self.consumer_capacity
    }

    /// Picks a worker: the most loaded one with room; else a new worker if the
    /// pool may grow; else the least loaded one.
    pub fn place(&self, workers: &[WorkerLoadView], can_grow: bool) -> Placement {
        let load = |w: &WorkerLoadView| (w.consumers, w.cpu_percent);
        let with_room = workers
            .iter()
            .filter(|w| self.has_room(w))
            .max_by(|a, b| load(a).partial_cmp(&load(b)).unwrap_or(std::cmp::Ordering::Equal));
        if let Some(worker) = with_room {
            return Placement::Existing(worker.index);
        }
        if can_grow || workers.is_empty() {
            return Placement::NewWorker;
        }
        workers
            .iter()
            .min_by(|a, b| load(a).partial_cmp(&load(b)).unwrap_or(std::cmp::Ordering::Equal))
            .map_or(Placement::NewWorker, |w| Placement::Existing(w.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(index: usize, cpu_percent: f32, consumers: u32) -> WorkerLoadView {
        WorkerLoadView { index, cpu_percent, consumers }
    }

    #[test]
    fn packs_onto_the_busiest_worker_with_room() {
        let policy = PlacementPolicy::default();
        let workers = [worker(0, 10.0, 50), worker(1, 30.0, 200), worker(2, 5.0, 10)];
        assert_eq!(policy.place(&workers, true), Placement::Existing(1));
    }

    #[test]
    fn overflows_to_a_new_worker_then_to_the_least_loaded() {
        let policy = PlacementPolicy { watermark: 0.6, consumer_capacity: 10 };
        let full = [worker(0, 10.0, 6), worker(1, 70.0, 1)];
        assert_eq!(policy.place(&full, true), Placement::NewWorker, "both over a watermark");
        assert_eq!(policy.place(&full, false), Placement::Existing(1), "fewest consumers when the pool is full");
        assert_eq!(policy.place(&[], false), Placement::NewWorker, "an empty pool starts a worker");
    }

    #[test]
    fn over_the_watermark_is_not_yet_full_capacity() {
        let policy = PlacementPolicy { watermark: 0.6, consumer_capacity: 10 };
        let over = worker(0, 10.0, 6);
        assert!(!policy.has_room(&over) && policy.below_capacity(&over), "6 of 10: over 0.6, below 10");
        assert!(!policy.below_capacity(&worker(0, 10.0, 10)), "10 consumers fill it");
        assert!(!policy.below_capacity(&worker(0, 100.0, 0)), "a whole core fills it");
    }
}

//! Counters and histograms the node keeps for `/metrics`: ROPE calls between
//! nodes (count by method, direction and outcome; latency) and find latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a ROPE call count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub(crate) method: String,
    /// `in` (a peer called us) or `out` (we called a peer).
    pub(crate) direction: &'static str,
    /// `ok` or `error`.
    pub(crate) outcome: &'static str,
}

/// Labels of a ROPE latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MethodLabel {
    pub(crate) method: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The node's own metrics (cheap to clone: the values are shared).
#[derive(Clone, Debug)]
pub(crate) struct NodeMetrics {
    pub(crate) rope_calls: Family<CallLabels, Counter>,
    pub(crate) rope_latency: Family<MethodLabel, Histogram, fn() -> Histogram>,
    pub(crate) find_latency: Histogram,
    /// WebRTC transports whose DTLS handshake failed (bad fingerprint, no SRTP profile...).
    pub(crate) dtls_failures: Counter,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self {
            rope_calls: Family::default(),
            dtls_failures: Counter::default(),
            rope_latency: Family::new_with_constructor(latency_histogram),
            find_latency: latency_histogram(),
        }
    }
}

impl NodeMetrics {
    /// Counts one ROPE call.
    pub(crate) fn call(&self, method: &str, direction: &'static str, ok: bool, seconds: f64) {
        let labels = CallLabels { method: method.to_owned(), direction, outcome: if ok { "ok" } else { "error" } };
        self.rope_calls.get_or_create(&labels).inc();
        if direction == "out" {
            self.rope_latency.get_or_create(&MethodLabel { method: method.to_owned() }).observe(seconds);
        }
    }

    /// Adds these metrics to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register("rope_calls", "ROPE calls between nodes", self.rope_calls.clone());
        registry.register(
            "rope_call_latency_seconds",
            "Latency of ROPE calls this node made",
            self.rope_latency.clone(),
        );
        registry.register("find_latency_seconds", "Time to find a stream's providers", self.find_latency.clone());
        registry.register(
            "webrtc_dtls_failures",
            "WebRTC transports whose DTLS handshake failed",
            self.dtls_failures.clone(),
        );
    }
}

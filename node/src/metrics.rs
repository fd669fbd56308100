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
    /// One of [`KNOWN_METHODS`], or `other`.
    pub(crate) method: &'static str,
    /// `in` (a peer called us) or `out` (we called a peer).
    pub(crate) direction: &'static str,
    /// `ok` or `error`.
    pub(crate) outcome: &'static str,
}

/// Labels of a ROPE latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MethodLabel {
    pub(crate) method: &'static str,
}

/// The node-to-node methods a node speaks. Only these become label values: a
/// peer naming ten thousand made-up methods must not make ten thousand series.
pub(crate) const KNOWN_METHODS: &[&str] = &[
    "stream.describe",
    "stream.pipe",
    "stream.unpipe",
    "stream.closed",
    "stream.move",
    "stream.stats",
    "mediasoup.session.call",
    "mediasoup.session.events",
    "mediasoup.session.close",
];

/// The label value for `method`: itself if known, else `other`.
fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.iter().find(|known| **known == method).copied().unwrap_or("other")
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
        let method = method_label(method);
        let labels = CallLabels { method, direction, outcome: if ok { "ok" } else { "error" } };
        self.rope_calls.get_or_create(&labels).inc();
        if direction == "out" {
            self.rope_latency.get_or_create(&MethodLabel { method }).observe(seconds);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let metrics = NodeMetrics::default();
        for i in 0..10_000 {
            metrics.call(&format!("made.up.{i}"), "in", false, 0.0);
        }
        metrics.call("stream.pipe", "in", true, 0.0);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("test value");
        let series = text.lines().filter(|l| l.starts_with("rope_calls_total{")).count();
        assert_eq!(series, 2, "{text}");
        assert!(text.contains(r#"method="other""#) && !text.contains("made.up"));
    }
}

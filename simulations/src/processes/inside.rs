//! Where a find's time goes inside the nodes. The runner times each find from
//! outside (HTTP request to answer); after the finds it reads every node's
//! `/metrics` once and sums, over the swarm, the nodes' own find latency
//! histogram (the DHT walk and the describes) and their outbound
//! `stream.describe` call latency histogram, with the describes that failed
//! (each failure is a provider that was asked again or left out). Set
//! against the outside figures they tell the walk, the describes and the
//! machine's queueing apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::measure::{metrics_texts, parse_prometheus};
use super::nodes::Swarm;

/// The find latency histogram of a node's `/metrics`.
const FIND_BUCKETS: &str = "mafalda_find_latency_seconds_bucket";
/// The ROPE call latency histogram (calls the node made, by method).
const CALL_BUCKETS: &str = "mafalda_rope_call_latency_seconds_bucket";
/// ROPE calls by method, direction and outcome.
const CALLS: &str = "mafalda_rope_calls_total";
/// The method whose calls a find makes.
const DESCRIBE: &str = "stream.describe";

/// A latency histogram summed over the nodes. Quantiles are the upper bounds
/// of the buckets they fall in (the nodes' buckets double from 0.5 ms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummedHistogram {
    /// Observations.
    pub count: f64,
    /// Upper bound of the bucket holding the median, ms.
    pub p50_at_most_ms: f64,
    /// Upper bound of the bucket holding the 99th percentile, ms.
    pub p99_at_most_ms: f64,
}

/// What the nodes themselves measured of the finds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InsideFinds {
    /// Nodes whose `/metrics` were read.
    pub nodes_read: usize,
    /// Finds, from the API call to the answer inside the node.
    pub finds: Option<SummedHistogram>,
    /// `stream.describe` calls the finding nodes made, answered.
    pub describes: Option<SummedHistogram>,
    /// Those answered with the description.
    pub describes_ok: f64,
    /// Those that failed (unreachable, refused or timed out).
    pub describes_failed: f64,
}

/// Reads every node's `/metrics` and sums them.
pub async fn read(swarm: &Swarm) -> InsideFinds {
    let texts: Vec<String> = metrics_texts(swarm).await.into_iter().flatten().map(|(text, _)| text).collect();
    summarize(&texts)
}

/// Sums the `/metrics` texts of the nodes.
pub fn summarize(texts: &[String]) -> InsideFinds {
    let mut finds: BTreeMap<Bound, f64> = BTreeMap::new();
    let mut describes: BTreeMap<Bound, f64> = BTreeMap::new();
    let (mut describes_ok, mut describes_failed) = (0.0, 0.0);
    for text in texts {
        for (name, labels, value) in parse_prometheus(text) {
            let le = labels.get("le").and_then(|le| le.parse::<f64>().ok()).map(Bound);
            let describe = labels.get("method").is_some_and(|m| m == DESCRIBE);
            match (name.as_str(), le) {
                (FIND_BUCKETS, Some(le)) => *finds.entry(le).or_default() += value,
                (CALL_BUCKETS, Some(le)) if describe => *describes.entry(le).or_default() += value,
                (CALLS, _) if describe && labels.get("direction").is_some_and(|d| d == "out") => {
                    match labels.get("outcome").map(String::as_str) {
                        Some("ok") => describes_ok += value,
                        _ => describes_failed += value,
                    }
                }
                _ => {}
            }
        }
    }
    InsideFinds {
        nodes_read: texts.len(),
        finds: summed(&finds),
        describes: summed(&describes),
        describes_ok,
        describes_failed,
    }
}

/// A bucket's upper bound, ordered (`+Inf` last).
#[derive(Debug, Clone, Copy)]
struct Bound(f64);

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Quantiles of cumulative bucket counts; `None` with no observation.
fn summed(buckets: &BTreeMap<Bound, f64>) -> Option<SummedHistogram> {
    let count = buckets.values().copied().fold(0.0, f64::max);
    if count <= 0.0 {
        return None;
    }
    let at_most = |q: f64| {
        let wanted = q * count;
        buckets.iter().find(|(_, cumulative)| **cumulative >= wanted).map_or(f64::INFINITY, |(le, _)| le.0 * 1000.0)
    };
    Some(SummedHistogram { count, p50_at_most_ms: at_most(0.5), p99_at_most_ms: at_most(0.99) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(find: [f64; 3], describe: [f64; 3], ok: f64, failed: f64) -> String {
        format!(
            "# HELP x\n\
             mafalda_find_latency_seconds_bucket{{le=\"0.1\"}} {}\n\
             mafalda_find_latency_seconds_bucket{{le=\"0.2\"}} {}\n\
             mafalda_find_latency_seconds_bucket{{le=\"+Inf\"}} {}\n\
             mafalda_rope_call_latency_seconds_bucket{{method=\"stream.describe\",le=\"0.05\"}} {}\n\
             mafalda_rope_call_latency_seconds_bucket{{method=\"stream.describe\",le=\"0.1\"}} {}\n\
             mafalda_rope_call_latency_seconds_bucket{{method=\"stream.describe\",le=\"+Inf\"}} {}\n\
             mafalda_rope_call_latency_seconds_bucket{{method=\"stream.pipe\",le=\"0.05\"}} 1000\n\
             mafalda_rope_calls_total{{method=\"stream.describe\",direction=\"out\",outcome=\"ok\"}} {ok}\n\
             mafalda_rope_calls_total{{method=\"stream.describe\",direction=\"out\",outcome=\"error\"}} {failed}\n\
             mafalda_rope_calls_total{{method=\"stream.describe\",direction=\"in\",outcome=\"error\"}} 500\n",
            find[0], find[1], find[2], describe[0], describe[1], describe[2]
        )
    }

    #[test]
    fn sums_the_nodes_and_reads_quantiles_as_bucket_bounds() {
        // 100 finds: 40 under 100 ms, 98 under 200 ms, 2 slower.
        let texts = vec![
            node([20.0, 49.0, 50.0], [10.0, 10.0, 10.0], 10.0, 1.0),
            node([20.0, 49.0, 50.0], [0.0, 10.0, 10.0], 9.0, 2.0),
        ];
        let inside = summarize(&texts);
        assert_eq!(inside.nodes_read, 2);
        let finds = inside.finds.expect("finds");
        assert_eq!((finds.count, finds.p50_at_most_ms, finds.p99_at_most_ms), (100.0, 200.0, f64::INFINITY));
        let describes = inside.describes.expect("describes, other methods left out");
        assert_eq!((describes.count, describes.p50_at_most_ms, describes.p99_at_most_ms), (20.0, 50.0, 100.0));
        assert_eq!((inside.describes_ok, inside.describes_failed), (19.0, 3.0), "outbound calls only");
    }

    #[test]
    fn no_observation_is_no_histogram() {
        let inside = summarize(&["garbage\n{{{\nmafalda_find_latency_seconds_bucket{le=\"x\"} 3\n".to_owned()]);
        assert_eq!(inside, InsideFinds { nodes_read: 1, ..InsideFinds::default() });
    }
}

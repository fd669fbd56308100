//! A real Prometheus (Debian's package, installed by `scripts/setup.sh`)
//! scrapes three real nodes' `/metrics`, and PromQL through its HTTP API
//! answers what an operator asks first: which node holds how many streams,
//! and how busy each node's mediasoup workers are.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A Prometheus server with its own configuration and storage, killed when dropped.
struct Prometheus {
    child: Child,
    address: String,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`HOST:PORT`) every second.
    fn scraping(targets: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("mafalda-prometheus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let listed: Vec<String> = targets.iter().map(|target| format!("'{target}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mafalda\n    static_configs:\n      - targets: [{}]\n",
            listed.join(", ")
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write the configuration");
        // Prometheus takes a while to listen: a port of an address no other test uses.
        let address = mafalda_tests::ports::unshared_tcp_addr().to_string();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus (Debian's `prometheus` package; ./scripts/setup.sh installs it)");
        Self { child, address, dir }
    }

    /// The instant vector `query` evaluates to: each series' `instance` and value.
    fn query(&self, query: &str) -> Option<HashMap<String, f64>> {
        let output = Command::new("curl")
            .args(["-s", "--fail", "--max-time", "5", "-G"])
            .arg(format!("http://{}/api/v1/query", self.address))
            .arg("--data-urlencode")
            .arg(format!("query={query}"))
            .output()
            .ok()?;
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let series = answer["data"]["result"].as_array()?;
        series
            .iter()
            .map(|one| {
                let instance = one["metric"]["instance"].as_str()?.to_owned();
                let value = one["value"][1].as_str()?.parse().ok()?;
                Some((instance, value))
            })
            .collect()
    }

    /// `query`'s answer once `ready` accepts it (within 30 s).
    fn query_until(&self, query: &str, ready: impl Fn(&HashMap<String, f64>) -> bool) -> HashMap<String, f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.query(query).unwrap_or_default();
            if ready(&answer) || Instant::now() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_three_nodes_and_promql_shows_their_streams_and_worker_cpu() {
    let mut nodes = common::loopback_swarm(3).into_iter();
    let (a, b, c) = (nodes.next().expect("A"), nodes.next().expect("B"), nodes.next().expect("C"));
    // A stream published at A and taken out at C: A and C hold it, B nothing.
    let _sink = common::publish_cam_and_take_it_out(&a, &c);

    let prometheus = Prometheus::scraping(&[&a.api, &b.api, &c.api]);
    let up = prometheus.query_until("up", |up| up.len() == 3 && up.values().all(|v| *v == 1.0));
    assert_eq!(up.len(), 3, "Prometheus scrapes the three nodes: {up:?}");
    assert!(up.values().all(|v| *v == 1.0), "every scrape succeeds: {up:?}");

    let expected = HashMap::from([(a.api.clone(), 1.0), (b.api.clone(), 0.0), (c.api.clone(), 1.0)]);
    let streams = prometheus.query_until("mafalda_streams", |streams| *streams == expected);
    assert_eq!(streams, expected, "streams held per node (A publishes, C relays, B holds none)");

    // Worker CPU, per node: the nodes holding the stream run a worker for it.
    let cpu = prometheus.query_until("max by (instance) (mafalda_worker_cpu_percent)", |cpu| {
        cpu.contains_key(&a.api) && cpu.contains_key(&c.api)
    });
    for node in [&a.api, &c.api] {
        let percent = cpu.get(node).copied();
        assert!(percent.is_some_and(|p| (0.0..=100.0).contains(&p)), "{node}'s worker CPU, a percentage: {cpu:?}");
    }
    drop(prometheus);
    for node in [c, b, a] {
        let (status, _) = node.signal_and_wait("INT", Duration::from_secs(6));
        assert!(status.success(), "exit after SIGINT: {status}");
    }
}

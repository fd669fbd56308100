//! Multi-node scenarios: start N real nodes on loopback, run a described
//! workload, and report what the swarm did (find latency, hops, delivery).
//! (The runner lands with its own issue; this crate reserves its place.)

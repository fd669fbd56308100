//! Command-line flags (each also settable from an environment variable).

use std::ops::RangeInclusive;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mafalda_media::MediaConfig;
use mafalda_media::mediasoup::worker::WorkerLogLevel;
use mafalda_node::NodeConfig;
use mafalda_node::api::{AllowedHost, AllowedOrigin, ApiConfig};
use mafalda_swarm::{Keypair, Multiaddr, SwarmConfig};

/// A Mafalda Swarm node: a mediasoup SFU on a libp2p swarm, where streams published
/// on any node can be found and consumed from any other.
#[derive(Debug, Parser)]
#[command(
    name = "mafalda-node",
    version,
    after_help = "Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug or RUST_LOG=mafalda_swarm=debug) to choose what is shown.\n\
                  Example: start a first node, then a second one that joins through it:\n  \
                  mafalda-node run\n  \
                  mafalda-node run --bootstrap /ip4/127.0.0.1/tcp/PORT/p2p/PEER_ID"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,

    /// How log lines on stderr are written: `text` for people, `json` for log collectors
    /// (journald, Loki, Elasticsearch): one object per line with timestamp, level, target,
    /// message, the event's fields and the span it happened in (node, stream, call).
    #[arg(long, global = true, value_enum, value_name = "FORMAT", env = "MAFALDA_LOG_FORMAT",
          default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start a node, print its peer id and listen addresses, run until stopped: SIGTERM (or
    /// POST /v1/drain) drains first (downstream nodes move away without a gap, up to
    /// --drain-timeout), SIGINT or a second signal stops at once.
    Run(Box<RunArgs>),
    /// Start a local 3-node swarm (A <- B <- C) on 127.0.0.1, publish a generated RTP
    /// stream at A, take it out at C, and print the path and packet counts.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long, value_name = "N")]
        seconds: Option<u64>,
    },
    /// Print a fresh private-swarm key (for `run --swarm-key FILE`): save it with
    /// `mafalda-node swarm-key > swarm.key && chmod 600 swarm.key` and give the same file
    /// to every node of the swarm.
    SwarmKey,
    /// The whole swarm as one node sees it, refreshing: every node's health, CPU, workers,
    /// transports, consumers, streams, clients and peers, and the pipes of each stream
    /// (the node's GET /v1/swarm; Ctrl-C to stop).
    Top {
        #[command(flatten)]
        target: crate::client::ApiTarget,
        /// Seconds between refreshes.
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_seconds)]
        interval: f64,
        /// Print the picture once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Show a running node's peer id, peers, workers and streams (through its API).
    Status {
        #[command(flatten)]
        target: crate::client::ApiTarget,
    },
    /// Publish a stream at a node from plain RTP; prints where to send the RTP.
    Publish {
        /// Stream id (1-128 of A-Z a-z 0-9 - _ . :).
        stream: String,
        /// A track as KIND:CODEC:PAYLOAD_TYPE:SSRC (audio:opus, video:vp8, video:h264); repeat for several.
        #[arg(long = "track", value_name = "TRACK", required = true, value_parser = crate::client::parse_track)]
        tracks: Vec<serde_json::Value>,
        /// Take RTP only from this IP:PORT (without it, the first sender to reach
        /// the ingest port becomes the source, whoever it is).
        #[arg(long, value_name = "IP:PORT")]
        source: Option<std::net::SocketAddr>,
        #[command(flatten)]
        target: crate::client::ApiTarget,
    },
    /// Find the providers of a stream from a node (hops, RTT, load).
    Find {
        /// Stream id.
        stream: String,
        #[command(flatten)]
        target: crate::client::ApiTarget,
    },
    /// Have a node send a stream's RTP to an address (it pipes the stream there first if needed).
    Consume {
        /// Stream id.
        stream: String,
        /// Where to send the RTP, as IP:PORT.
        #[arg(long, value_name = "IP:PORT")]
        to: std::net::SocketAddr,
        /// One destination port per track (in the stream's track order) instead of
        /// the port of --to for all, e.g. `--ports 5004,5006` (what ffmpeg needs).
        #[arg(long, value_name = "PORT,PORT", value_delimiter = ',')]
        ports: Option<Vec<u16>>,
        /// Write an SDP describing the RTP to FILE, for receivers such as
        /// `ffmpeg -protocol_whitelist file,udp,rtp -i FILE`.
        #[arg(long, value_name = "FILE")]
        sdp: Option<std::path::PathBuf>,
        #[command(flatten)]
        target: crate::client::ApiTarget,
    },
}

/// Flags of `mafalda-node run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// libp2p address to listen on; repeat for several. Port 0 picks a free port.
    /// Use a routable address (e.g. /ip4/0.0.0.0/tcp/4001) to accept peers from other hosts.
    #[arg(
        long = "listen",
        value_name = "MULTIADDR",
        env = "MAFALDA_LISTEN",
        value_delimiter = ',',
        default_value = "/ip4/127.0.0.1/tcp/0"
    )]
    listen: Vec<Multiaddr>,

    /// Address of a peer to join the swarm through, ending in /p2p/<peer id>
    /// (as printed by another node's "listening on:" line); repeat for several.
    /// The host may be a name, resolved at each dial through /etc/hosts and
    /// the system's resolver: /dns4/seed.example.org/tcp/4001/p2p/<peer id>
    /// (or /dns6/…, /dns/…).
    #[arg(long = "bootstrap", value_name = "MULTIADDR", env = "MAFALDA_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Vec<Multiaddr>,

    /// Private swarm: a pre-shared key file in the libp2p/IPFS format
    /// (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits; make one with
    /// `mafalda-node swarm-key`). Only nodes with the same key can connect or make a
    /// single call. Without it, any host that reaches --listen is a member. QUIC
    /// addresses are refused with a key (libp2p's pnet covers TCP only).
    #[arg(long, value_name = "FILE", env = "MAFALDA_SWARM_KEY")]
    swarm_key: Option<PathBuf>,

    /// Most libp2p connections in all.
    #[arg(long, value_name = "N", env = "MAFALDA_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,

    /// Most connections other hosts opened (the rest stay free for the node's own dials).
    #[arg(long, value_name = "N", env = "MAFALDA_MAX_INCOMING", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_incoming: u32,

    /// Most incoming connections still in their handshake; a flood of fresh
    /// identities beyond it is refused at once.
    #[arg(long, value_name = "N", env = "MAFALDA_MAX_PENDING_INCOMING", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_pending_incoming: u32,

    /// Most connections to or from one peer (one each way, and a hole punch's
    /// or an AutoNAT dial-back's beside them).
    #[arg(long, value_name = "N", env = "MAFALDA_MAX_CONNECTIONS_PER_PEER", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_peer: u32,

    /// Most peers kept connected. Above it, peers nothing uses (no call for a
    /// minute, no pipe, no session, not in the gossip mesh) are disconnected,
    /// least recently used first, down to --target-peers. Streams are still
    /// found from every node (the DHT keeps contacts, not connections), and a
    /// node's control-plane cost stays flat as the swarm grows. Peers in use are
    /// never disconnected; --max-connections stays the hard cap. Above 3/4 of
    /// --max-incoming (a crowd, as at a new stream's origin when a whole swarm
    /// finds it), peers are let go after 3 s without a call instead.
    #[arg(long, value_name = "N", env = "MAFALDA_MAX_PEERS", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_peers: u32,

    /// Peers left connected after unused ones are disconnected. A node left
    /// with fewer than half of it (its peers trim on their own too) dials peers
    /// it knows back up to it, each at most once a minute [default: 3/4 of
    /// --max-peers].
    #[arg(long, value_name = "N", env = "MAFALDA_TARGET_PEERS", value_parser = clap::value_parser!(u32).range(1..))]
    target_peers: Option<u32>,

    /// Address of the apps' HTTP API (see the README): publish, find and consume
    /// streams, status, /metrics. Keep it on loopback unless a token is set.
    #[arg(long, value_name = "HOST:PORT", env = "MAFALDA_API", default_value = "127.0.0.1:7700")]
    pub(crate) api: std::net::SocketAddr,

    /// Bearer token the API requires on every request (Authorization: Bearer TOKEN): the app
    /// token. What a request or ROPE connection makes with it, only that request's token (over
    /// HTTP) or that connection (over ROPE) and the admin token may close.
    #[arg(long, value_name = "TOKEN", env = "MAFALDA_API_TOKEN", hide_env_values = true)]
    pub(crate) api_token: Option<String>,

    /// File whose first line is the app token, instead of --api-token (keeps it out of `ps`).
    #[arg(long, value_name = "FILE", env = "MAFALDA_API_TOKEN_FILE", conflicts_with = "api_token")]
    api_token_file: Option<PathBuf>,

    /// Admin token: opens the API like --api-token and may also close what any app made.
    /// For operators, not for pages. Must differ from --api-token.
    #[arg(long, value_name = "TOKEN", env = "MAFALDA_API_ADMIN_TOKEN", hide_env_values = true)]
    api_admin_token: Option<String>,

    /// File whose first line is the admin token, instead of --api-admin-token.
    #[arg(long, value_name = "FILE", env = "MAFALDA_API_ADMIN_TOKEN_FILE", conflicts_with = "api_admin_token")]
    api_admin_token_file: Option<PathBuf>,

    /// Web origins (http[s]://HOST[:PORT]) whose pages may use the API, WebSocket included,
    /// besides the node's own (http://<--api address>); other origins get 403. Programs that
    /// send no Origin are not affected. `*` lets every web page the user visits drive the
    /// node: unsafe.
    #[arg(long, value_name = "ORIGIN,...", env = "MAFALDA_API_ORIGINS", value_delimiter = ',')]
    api_origins: Vec<AllowedOrigin>,

    /// Names the API is reached by besides its address (NAME, or NAME:PORT to pin the port),
    /// e.g. a reverse proxy's DNS name; requests for any other Host get 421 (DNS rebinding).
    #[arg(long, value_name = "NAME,...", env = "MAFALDA_API_HOSTS", value_delimiter = ',')]
    api_hosts: Vec<AllowedHost>,

    /// Do not carry circuits for peers behind NAT. By default every node serves
    /// them (circuit relay v2: up to 128 slots, 64 circuits, 30 min and 8 MiB
    /// each; signalling only, never media); peers ask only nodes they dialed.
    #[arg(long, env = "MAFALDA_NO_RELAY_SERVER")]
    no_relay_server: bool,

    /// Serve the API on a non-loopback --api without a token. Anyone who can reach the
    /// address can then publish, consume and close streams on this node.
    #[arg(long, env = "MAFALDA_API_INSECURE")]
    api_insecure: bool,

    /// IP address media (RTP ingest, egress and pipes between nodes) listens on. A
    /// dual-stack node gives two, one IPv4 and one IPv6: the first serves ingest, egress
    /// and pipes in its family, the second pipes with peers connected over the other.
    #[arg(long, value_name = "IP", env = "MAFALDA_MEDIA_IP", default_value = "127.0.0.1", value_delimiter = ',')]
    media_ip: Vec<std::net::IpAddr>,

    /// Address other nodes send pipe media to, when it differs from --media-ip (NAT, public IP);
    /// at most one per --media-ip family. Unset, a node behind a 1:1 NAT announces the
    /// address its peers confirmed reaching it at.
    #[arg(long, value_name = "IP", env = "MAFALDA_ANNOUNCED_IP", value_delimiter = ',')]
    announced_ip: Vec<std::net::IpAddr>,

    /// Load (0-1 of a worker's CPU and consumer capacity) above which this node
    /// counts as busy: new consumers go to other workers, then other nodes.
    #[arg(long, value_name = "FRACTION", env = "MAFALDA_WATERMARK", default_value_t = 0.6,
          value_parser = parse_watermark)]
    watermark: f32,

    /// How long a relay keeps a stream after its last local consumer (egress, WebRTC
    /// consumer or downstream pipe) left; a consumer back in time reuses the pipe.
    /// Then it closes its upstream pipe and stops providing the stream.
    #[arg(long, value_name = "SECONDS", env = "MAFALDA_RELAY_LINGER", default_value_t = 10.0,
          value_parser = parse_seconds)]
    relay_linger: f64,

    /// Most pipes one peer may hold from this node: one per stream it pulls
    /// from here, so at least the publishers a room has at this node that
    /// another node's members watch. Bounds the pipe transports, ports and
    /// bandwidth one peer can make this node spend; past it the peer is
    /// refused (forbidden) and tries another provider.
    #[arg(long, value_name = "N", env = "MAFALDA_MAX_PIPES_PER_PEER",
          default_value_t = u32::try_from(mafalda_node::DEFAULT_MAX_PIPES_PER_PEER).unwrap_or(u32::MAX),
          value_parser = clap::value_parser!(u32).range(1..))]
    max_pipes_per_peer: u32,

    /// Extra latency to assume on the link to a peer when ranking providers, as
    /// PEER_ID=MILLISECONDS (repeat for several): for labs and tests on one machine,
    /// where every RTT is the same, to make some paths look far.
    #[arg(long = "link-delay", value_name = "PEER_ID=MS", value_parser = parse_link_delay)]
    link_delay: Vec<(mafalda_swarm::PeerId, std::time::Duration)>,

    /// Longest a drain (SIGTERM, POST /v1/drain) takes before the node stops anyway.
    #[arg(long, value_name = "SECONDS", env = "MAFALDA_DRAIN_TIMEOUT", default_value_t = 30.0,
          value_parser = parse_seconds)]
    drain_timeout: f64,

    /// TOML file with any of these settings (keys like `api`, `bootstrap`, `workers`);
    /// flags and environment variables win over it.
    #[arg(long, value_name = "FILE", env = "MAFALDA_CONFIG")]
    config: Option<PathBuf>,

    /// Key file holding the node's ed25519 identity (libp2p protobuf encoding). Created
    /// with mode 0600 when missing, so the peer id survives restarts. Without it the node
    /// runs with a fresh identity each time.
    #[arg(long, value_name = "PATH", env = "MAFALDA_IDENTITY")]
    identity: Option<PathBuf>,

    /// Most mediasoup workers (one thread each, started as load needs them; at most one
    /// per CPU core is sensible). Default: the number of CPU cores.
    #[arg(long, value_name = "N", env = "MAFALDA_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

    /// UDP/TCP port range for media transports, as MIN-MAX.
    #[arg(long, value_name = "MIN-MAX", env = "MAFALDA_RTC_PORTS", default_value = "40000-49999",
          value_parser = parse_port_range)]
    rtc_ports: RangeInclusive<u16>,

    /// Ports for WebRTC clients (WHIP and WHEP at /v1/streams/ID/whip and /whep, and
    /// browsers with mediasoup-client through /v1/rope): each mediasoup worker listens on
    /// one UDP and one TCP port of MIN-MAX on --media-ip (announced as --announced-ip).
    /// Keep it outside --rtc-ports.
    #[arg(long, value_name = "MIN-MAX", env = "MAFALDA_WEBRTC_PORTS", default_value = "39000-39999",
          value_parser = parse_port_range)]
    webrtc_ports: RangeInclusive<u16>,

    /// Serve no WebRTC clients (no WHIP, WHEP or mediasoup-client; nodes still pipe to
    /// each other and take plain RTP).
    #[arg(long, env = "MAFALDA_NO_WEBRTC")]
    no_webrtc: bool,

    /// How long an app's session on /v1/rope outlives a dropped WebSocket: an app that
    /// reconnects within it (with its session token) finds everything it made intact;
    /// after it, everything the app made is closed. 0 closes at once.
    #[arg(long, value_name = "SECONDS", env = "MAFALDA_SESSION_GRACE", default_value_t = 15.0,
          value_parser = parse_seconds)]
    session_grace: f64,

    /// Remote Mediasoup: most mediasoup workers one app connection to /v1/rope may run
    /// at once (each an OS thread of this node; mediasoup's API through ROPE).
    #[arg(long, value_name = "N", env = "MAFALDA_APP_WORKERS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(0..=256))]
    app_workers: u16,

    /// Remote Mediasoup: most mediasoup objects (workers, routers, transports, producers,
    /// consumers, ...) one app connection may hold at once.
    #[arg(long, value_name = "N", env = "MAFALDA_APP_OBJECTS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    app_objects: u32,

    /// Level of mediasoup's own worker logs (shown through RUST_LOG as target "mediasoup").
    #[arg(long, value_enum, value_name = "LEVEL", env = "MAFALDA_WORKER_LOG_LEVEL", default_value_t = WorkerLog::Warn)]
    worker_log_level: WorkerLog,
}

/// mediasoup worker log levels.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum WorkerLog {
    /// Everything, very verbose.
    Debug,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
    /// Nothing.
    None,
}

impl From<WorkerLog> for WorkerLogLevel {
    fn from(level: WorkerLog) -> Self {
        match level {
            WorkerLog::Debug => WorkerLogLevel::Debug,
            WorkerLog::Warn => WorkerLogLevel::Warn,
            WorkerLog::Error => WorkerLogLevel::Error,
            WorkerLog::None => WorkerLogLevel::None,
        }
    }
}

impl RunArgs {
    /// Fills every setting not given as a flag or environment variable from the
    /// `--config` file, if there is one.
    pub(crate) fn apply_config_file(&mut self, matches: &clap::ArgMatches) -> anyhow::Result<()> {
        let Some(path) = self.config.clone() else { return Ok(()) };
        let file = crate::config_file::ConfigFile::load(&path)?;
        let unset =
            |id: &str| matches.value_source(id).is_none_or(|source| source == clap::parser::ValueSource::DefaultValue);
        let bad = |key: &str, error: &dyn std::fmt::Display| anyhow::anyhow!("{}: {key}: {error}", path.display());
        if let Some(listen) = file.listen.filter(|_| unset("listen")) {
            self.listen = parse_each(&listen, "listen", &path)?;
        }
        if let Some(bootstrap) = file.bootstrap.filter(|_| unset("bootstrap")) {
            self.bootstrap = parse_each(&bootstrap, "bootstrap", &path)?;
        }
        if let Some(key) = file.swarm_key.filter(|_| unset("swarm_key")) {
            self.swarm_key = Some(key);
        }
        for (id, value, target) in [
            ("max_connections", file.max_connections, &mut self.max_connections),
            ("max_incoming", file.max_incoming, &mut self.max_incoming),
            ("max_pending_incoming", file.max_pending_incoming, &mut self.max_pending_incoming),
            ("max_connections_per_peer", file.max_connections_per_peer, &mut self.max_connections_per_peer),
            ("max_peers", file.max_peers, &mut self.max_peers),
            ("max_pipes_per_peer", file.max_pipes_per_peer, &mut self.max_pipes_per_peer),
        ] {
            if let Some(value) = value.filter(|_| unset(id)) {
                anyhow::ensure!(value >= 1, "{}: {id} must be at least 1", path.display());
                *target = value;
            }
        }
        if let Some(target) = file.target_peers.filter(|_| unset("target_peers")) {
            anyhow::ensure!(target >= 1, "{}: target_peers must be at least 1", path.display());
            self.target_peers = Some(target);
        }
        if let Some(api) = file.api.filter(|_| unset("api")) {
            self.api = api.parse().map_err(|e| bad("api", &e))?;
        }
        if let Some(token) = file.api_token.filter(|_| unset("api_token") && unset("api_token_file")) {
            self.api_token = Some(token);
        }
        if let Some(path) = file.api_token_file.filter(|_| unset("api_token") && unset("api_token_file")) {
            self.api_token_file = Some(path);
        }
        if let Some(token) = file.api_admin_token.filter(|_| unset("api_admin_token") && unset("api_admin_token_file"))
        {
            self.api_admin_token = Some(token);
        }
        if let Some(path) =
            file.api_admin_token_file.filter(|_| unset("api_admin_token") && unset("api_admin_token_file"))
        {
            self.api_admin_token_file = Some(path);
        }
        if let Some(origins) = file.api_origins.filter(|_| unset("api_origins")) {
            self.api_origins = parse_each(&origins, "api_origins", &path)?;
        }
        if let Some(hosts) = file.api_hosts.filter(|_| unset("api_hosts")) {
            self.api_hosts = parse_each(&hosts, "api_hosts", &path)?;
        }
        if let Some(insecure) = file.api_insecure.filter(|_| unset("api_insecure")) {
            self.api_insecure = insecure;
        }
        if let Some(serve) = file.relay_server.filter(|_| unset("no_relay_server")) {
            self.no_relay_server = !serve;
        }
        if let Some(ips) = file.media_ip.filter(|_| unset("media_ip")) {
            self.media_ip = parse_each(&ips.into_vec(), "media_ip", &path)?;
        }
        if let Some(ips) = file.announced_ip.filter(|_| unset("announced_ip")) {
            self.announced_ip = parse_each(&ips.into_vec(), "announced_ip", &path)?;
        }
        if let Some(watermark) = file.watermark.filter(|_| unset("watermark")) {
            self.watermark = parse_watermark(&watermark.to_string()).map_err(|e| bad("watermark", &e))?;
        }
        if let Some(linger) = file.relay_linger.filter(|_| unset("relay_linger")) {
            self.relay_linger = parse_seconds(&linger.to_string()).map_err(|e| bad("relay_linger", &e))?;
        }
        if let Some(timeout) = file.drain_timeout.filter(|_| unset("drain_timeout")) {
            self.drain_timeout = parse_seconds(&timeout.to_string()).map_err(|e| bad("drain_timeout", &e))?;
        }
        if let Some(grace) = file.session_grace.filter(|_| unset("session_grace")) {
            self.session_grace = parse_seconds(&grace.to_string()).map_err(|e| bad("session_grace", &e))?;
        }
        if let Some(workers) = file.app_workers.filter(|_| unset("app_workers")) {
            anyhow::ensure!(workers <= 256, "{}: app_workers must be at most 256", path.display());
            self.app_workers = workers;
        }
        if let Some(objects) = file.app_objects.filter(|_| unset("app_objects")) {
            anyhow::ensure!((1..=1_000_000).contains(&objects), "{}: app_objects must be 1 to 1000000", path.display());
            self.app_objects = objects;
        }
        if let Some(identity) = file.identity.filter(|_| unset("identity")) {
            self.identity = Some(identity);
        }
        if let Some(workers) = file.workers.filter(|_| unset("workers")) {
            anyhow::ensure!(workers >= 1, "{}: workers must be at least 1", path.display());
            self.workers = Some(workers);
        }
        if let Some(ports) = file.rtc_ports.filter(|_| unset("rtc_ports")) {
            self.rtc_ports = parse_port_range(&ports).map_err(|e| bad("rtc_ports", &e))?;
        }
        if let Some(ports) = file.webrtc_ports.filter(|_| unset("webrtc_ports")) {
            self.webrtc_ports = parse_port_range(&ports).map_err(|e| bad("webrtc_ports", &e))?;
        }
        if let Some(webrtc) = file.webrtc.filter(|_| unset("no_webrtc")) {
            self.no_webrtc = !webrtc;
        }
        Ok(())
    }

    /// The API's settings, tokens read from their files; refuses a non-loopback
    /// --api without a token unless --api-insecure says that is meant.
    pub(crate) fn api_config(&self) -> anyhow::Result<ApiConfig> {
        let token = read_token(self.api_token.as_ref(), self.api_token_file.as_ref(), "--api-token-file")?;
        let admin =
            read_token(self.api_admin_token.as_ref(), self.api_admin_token_file.as_ref(), "--api-admin-token-file")?;
        anyhow::ensure!(admin.is_none() || admin != token, "--api-admin-token must differ from --api-token");
        if token.is_none() && admin.is_none() && !self.api.ip().is_loopback() && !self.api_insecure {
            anyhow::bail!(
                "--api {} is not a loopback address and no API token is set: anyone who can reach it could \
                 publish, consume and close streams on this node. Set --api-token TOKEN (or --api-token-file, \
                 MAFALDA_API_TOKEN, api_token in the config file), or keep --api on 127.0.0.1, or pass \
                 --api-insecure (MAFALDA_API_INSECURE=true) to run without a token anyway",
                self.api
            );
        }
        let mut config = ApiConfig::default();
        config.token = token;
        config.admin_token = admin;
        config.origins = self.api_origins.clone();
        config.hosts = self.api_hosts.clone();
        config.session_grace = std::time::Duration::from_secs_f64(self.session_grace);
        Ok(config)
    }

    /// Remote Mediasoup's settings: caps per app session, app workers' ports.
    fn app_media(&self) -> mafalda_mediasoup_api::HostConfig {
        mafalda_mediasoup_api::HostConfig {
            limits: mafalda_mediasoup_api::Limits {
                workers: usize::from(self.app_workers),
                objects: usize::try_from(self.app_objects).unwrap_or(usize::MAX),
            },
            rtc_ports: self.rtc_ports.clone(),
        }
    }

    /// --media-ip and --announced-ip, checked: one or two media IPs of
    /// different families, each announced IP matched to the media IP of its
    /// family.
    fn media_ips(&self) -> anyhow::Result<MediaIps> {
        let family = |ip: &std::net::IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        let (media_ip, second_media_ip) = match self.media_ip.as_slice() {
            [] => anyhow::bail!("--media-ip needs an address"),
            [one] => (*one, None),
            [first, second] if first.is_ipv4() != second.is_ipv4() => (*first, Some(*second)),
            [first, second] => anyhow::bail!(
                "--media-ip {first} and {second} are both {}: a dual-stack node gives one IPv4 and one IPv6 address",
                family(first)
            ),
            more => anyhow::bail!("--media-ip given {} times: at most twice (one IPv4, one IPv6)", more.len()),
        };
        let (mut announced_ip, mut second_announced_ip) = (None, None);
        for announced in &self.announced_ip {
            let slot = if announced.is_ipv4() == media_ip.is_ipv4() {
                &mut announced_ip
            } else if second_media_ip.is_some() {
                &mut second_announced_ip
            } else {
                anyhow::bail!("--announced-ip {announced} is {}, and no --media-ip is", family(announced));
            };
            anyhow::ensure!(slot.is_none(), "--announced-ip: at most one {} address", family(announced));
            *slot = Some(*announced);
        }
        Ok(MediaIps { media_ip, announced_ip, second_media_ip, second_announced_ip })
    }

    /// Turns the flags into a node configuration, loading or creating the identity.
    pub(crate) fn node_config(&self) -> anyhow::Result<NodeConfig> {
        let media_ips = self.media_ips()?;
        let mut media = MediaConfig::default();
        if let Some(workers) = self.workers {
            media.workers = usize::from(workers);
        }
        media.rtc_ports = self.rtc_ports.clone();
        media.worker_log_level = self.worker_log_level.into();
        if !self.no_webrtc {
            let ports = &self.webrtc_ports;
            let overlaps = ports.start() <= self.rtc_ports.end() && self.rtc_ports.start() <= ports.end();
            anyhow::ensure!(!overlaps, "--webrtc-ports must not overlap --rtc-ports");
            media.webrtc = Some(mafalda_media::WebRtcListen {
                ip: media_ips.media_ip,
                announced_address: media_ips.announced_ip.map(|ip| ip.to_string()),
                ports: ports.clone(),
            });
        }
        let keypair = match &self.identity {
            Some(path) => mafalda_swarm::identity::load_or_create(path)?,
            None => {
                tracing::info!("no --identity given: running with a fresh, temporary identity");
                Keypair::generate_ed25519()
            }
        };
        let mut connections = mafalda_swarm::ConnectionSettings::default();
        connections.max_established = self.max_connections;
        connections.max_established_incoming = self.max_incoming;
        connections.max_pending_incoming = self.max_pending_incoming;
        connections.max_per_peer = self.max_connections_per_peer;
        connections.max_peers = self.max_peers;
        connections.target_peers = match self.target_peers {
            Some(target) => {
                anyhow::ensure!(
                    target <= self.max_peers,
                    "--target-peers ({target}) must not exceed --max-peers ({})",
                    self.max_peers
                );
                target
            }
            None => (self.max_peers - self.max_peers / 4).max(1),
        };
        connections.crowd_peers = mafalda_swarm::ConnectionSettings::crowd_mark(self.max_peers, self.max_incoming);
        let mut relay = mafalda_swarm::RelaySettings::default();
        relay.serve = !self.no_relay_server;
        let mut swarm = SwarmConfig::new(keypair, self.listen.clone())
            .with_bootstrap(self.bootstrap.clone())
            .with_connections(connections)
            .with_relay(relay);
        if let Some(path) = &self.swarm_key {
            let key = mafalda_swarm::SwarmKey::load(path)?;
            tracing::info!(fingerprint = %key.fingerprint(), "private swarm: only nodes with this swarm key can connect");
            swarm = swarm.with_swarm_key(key);
        }
        let mut config = NodeConfig::new(media, swarm);
        config.media_ip = media_ips.media_ip;
        config.announced_ip = media_ips.announced_ip;
        config.second_media_ip = media_ips.second_media_ip;
        config.second_announced_ip = media_ips.second_announced_ip;
        config.media.placement.watermark = self.watermark;
        config.cost.watermark = f64::from(self.watermark);
        config.relay_linger = std::time::Duration::from_secs_f64(self.relay_linger);
        config.max_pipes_per_peer = usize::try_from(self.max_pipes_per_peer).unwrap_or(usize::MAX);
        config.drain_timeout = std::time::Duration::from_secs_f64(self.drain_timeout);
        config.link_delay = self.link_delay.iter().copied().collect();
        config.app_media = self.app_media();
        Ok(config)
    }
}

/// A token given as a flag, or the first line of its file (not empty).
fn read_token(given: Option<&String>, file: Option<&PathBuf>, flag: &str) -> anyhow::Result<Option<String>> {
    let Some(path) = file else { return Ok(given.cloned()) };
    anyhow::ensure!(given.is_none(), "give a token or {flag}, not both");
    let text = std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    anyhow::ensure!(!token.is_empty(), "{flag}: {} holds no token", path.display());
    Ok(Some(token.to_owned()))
}

fn parse_link_delay(text: &str) -> anyhow::Result<(mafalda_swarm::PeerId, std::time::Duration)> {
    let (peer, ms) = text.split_once('=').context("expected PEER_ID=MILLISECONDS")?;
    let peer = peer.trim().parse().context("not a peer id")?;
    let ms: u64 = ms.trim().parse().context("milliseconds must be a whole number")?;
    anyhow::ensure!(ms <= 60_000, "at most 60000 ms");
    Ok((peer, std::time::Duration::from_millis(ms)))
}

fn parse_seconds(text: &str) -> anyhow::Result<f64> {
    let value: f64 = text.parse().context("expected a number of seconds such as 10 or 0.5")?;
    anyhow::ensure!(value.is_finite() && (0.0..=86_400.0).contains(&value), "seconds must be 0 to 86400");
    Ok(value)
}

fn parse_watermark(text: &str) -> anyhow::Result<f32> {
    let value: f32 = text.parse().context("expected a fraction such as 0.6")?;
    anyhow::ensure!(value > 0.0 && value <= 1.0, "the watermark is a fraction in (0, 1]");
    Ok(value)
}

fn parse_port_range(text: &str) -> anyhow::Result<RangeInclusive<u16>> {
    let (min, max) = text.split_once('-').context("expected MIN-MAX, e.g. 40000-49999")?;
    let min: u16 = min.trim().parse().context("MIN is not a port number (1-65535)")?;
    let max: u16 = max.trim().parse().context("MAX is not a port number (1-65535)")?;
    anyhow::ensure!(min >= 1, "ports start at 1");
    anyhow::ensure!(min <= max, "MIN ({min}) is above MAX ({max})");
    Ok(min..=max)
}

/// Parses every item of the config file's list `key`; the first bad one is
/// named with the file and the key.
fn parse_each<T>(items: &[String], key: &str, path: &std::path::Path) -> anyhow::Result<Vec<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    items.iter().map(|item| item.parse().map_err(|e| anyhow::anyhow!("{}: {key}: {e}", path.display()))).collect()
}

/// The media addresses of `--media-ip` and `--announced-ip`, by family.
struct MediaIps {
    media_ip: std::net::IpAddr,
    announced_ip: Option<std::net::IpAddr>,
    second_media_ip: Option<std::net::IpAddr>,
    second_announced_ip: Option<std::net::IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_parses_and_rejects() {
        assert_eq!(parse_port_range("40000-40010").ok(), Some(40000..=40010));
        assert!(parse_port_range("40010-40000").is_err());
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("abc").is_err());
        assert!(parse_port_range("1-70000").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

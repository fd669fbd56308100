//! `mafalda-node run --config FILE`: the same settings as the flags, in TOML.
//! A flag or its environment variable wins over the file; the file wins over
//! the built-in default.
//!
//! ```toml
//! listen = ["/ip4/0.0.0.0/tcp/4001"]
//! bootstrap = ["/ip4/192.0.2.10/tcp/4001/p2p/12D3Koo..."]
//! api = "127.0.0.1:7700"
//! api_token = "change-me"
//! api_admin_token_file = "/etc/mafalda/admin-token"
//! api_origins = ["https://app.example"]
//! api_hosts = ["media.example.com"]
//! api_insecure = false
//! relay_server = true
//! media_ip = ["0.0.0.0", "::"]        # or one address
//! announced_ip = ["192.0.2.20", "2001:db8::20"]
//! watermark = 0.6
//! identity = "/var/lib/mafalda/node.key"
//! workers = 4
//! rtc_ports = "40000-49999"
//! webrtc_ports = "39000-39015"
//! webrtc = true                       # false: no WHIP, WHEP or mediasoup-client
//! session_grace = 15
//! app_workers = 4
//! app_objects = 4096
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// A setting given as one string or a list of them (`media_ip = "10.0.0.5"`
/// or `media_ip = ["10.0.0.5", "2001:db8::5"]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMore {
    One(String),
    More(Vec<String>),
}

impl OneOrMore {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::More(more) => more,
        }
    }
}

/// Everything a config file may set (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub(crate) listen: Option<Vec<String>>,
    pub(crate) bootstrap: Option<Vec<String>>,
    pub(crate) swarm_key: Option<PathBuf>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) max_incoming: Option<u32>,
    pub(crate) max_pending_incoming: Option<u32>,
    pub(crate) max_connections_per_peer: Option<u32>,
    pub(crate) max_peers: Option<u32>,
    pub(crate) target_peers: Option<u32>,
    pub(crate) api: Option<String>,
    pub(crate) api_token: Option<String>,
    pub(crate) api_token_file: Option<PathBuf>,
    pub(crate) api_admin_token: Option<String>,
    pub(crate) api_admin_token_file: Option<PathBuf>,
    pub(crate) api_origins: Option<Vec<String>>,
    pub(crate) api_hosts: Option<Vec<String>>,
    pub(crate) api_insecure: Option<bool>,
    pub(crate) relay_server: Option<bool>,
    pub(crate) media_ip: Option<OneOrMore>,
    pub(crate) announced_ip: Option<OneOrMore>,
    pub(crate) watermark: Option<f32>,
    pub(crate) relay_linger: Option<f64>,
    pub(crate) max_pipes_per_peer: Option<u32>,
    pub(crate) drain_timeout: Option<f64>,
    pub(crate) session_grace: Option<f64>,
    pub(crate) app_workers: Option<u16>,
    pub(crate) app_objects: Option<u32>,
    pub(crate) identity: Option<PathBuf>,
    pub(crate) workers: Option<u16>,
    pub(crate) rtc_ports: Option<String>,
    pub(crate) webrtc_ports: Option<String>,
    pub(crate) webrtc: Option<bool>,
}

impl ConfigFile {
    /// Reads and checks a config file; unknown keys are errors (typos must not pass silently).
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys_and_refuses_unknown_ones() {
        let file: ConfigFile =
            toml::from_str("api = \"127.0.0.1:9000\"\nworkers = 2\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]")
                .expect("valid");
        assert_eq!(file.api.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(file.workers, Some(2));
        assert!(toml::from_str::<ConfigFile>("apii = \"x\"").is_err(), "a typo is an error");
        assert!(toml::from_str::<ConfigFile>("workers = \"many\"").is_err(), "a wrong type is an error");
        let caps: ConfigFile = toml::from_str("max_pipes_per_peer = 200").expect("valid");
        assert_eq!(caps.max_pipes_per_peer, Some(200));
        assert!(toml::from_str::<ConfigFile>("max_pipes_per_peer = -1").is_err(), "a negative cap is an error");
    }
}

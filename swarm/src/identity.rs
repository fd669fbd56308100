//! The node's persistent ed25519 identity, kept in a key file.
//!
//! The file holds the libp2p protobuf encoding of the keypair (the format other
//! libp2p implementations use). It is created with mode 0600 when missing; a file
//! that exists but cannot be read or decoded is an error, never silently replaced,
//! because replacing it would change the node's peer id.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use tracing::{info, warn};

/// Why the identity file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The file exists but could not be read.
    #[error("cannot read identity file {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file does not hold a libp2p ed25519 keypair.
    #[error("identity file {path} is not a libp2p ed25519 key: {reason}")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A new key file could not be written.
    #[error("cannot create identity file {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Loads the keypair from `path`, or creates a new ed25519 keypair there (mode 0600).
pub fn load_or_create(path: &Path) -> Result<Keypair, IdentityError> {
    match fs::read(path) {
        Ok(bytes) => decode(path, &bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => create(path),
        Err(source) => Err(IdentityError::Read { path: path.to_owned(), source }),
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Keypair, IdentityError> {
    let malformed = |reason: String| IdentityError::Malformed { path: path.to_owned(), reason };
    let keypair = Keypair::from_protobuf_encoding(bytes).map_err(|e| malformed(e.to_string()))?;
    if keypair.clone().try_into_ed25519().is_err() {
        return Err(malformed(format!("key type is {:?}, expected Ed25519", keypair.key_type())));
    }
    if let Ok(metadata) = fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        warn!(path = %path.display(), mode = format!("{:o}", metadata.permissions().mode() & 0o777),
              "identity file is readable by others; chmod 600 it");
    }
    Ok(keypair)
}

fn create(path: &Path) -> Result<Keypair, IdentityError> {
    let write_error = |source: io::Error| IdentityError::Write { path: path.to_owned(), source };
    let keypair = Keypair::generate_ed25519();
    let bytes = keypair.to_protobuf_encoding().map_err(|e| write_error(io::Error::other(e.to_string())))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(write_error)?;
    }
    // Write a temporary file then rename, so a crash never leaves a half-written key.
    let partial = path.with_extension("partial");
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial).map_err(write_error)?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(write_error)?;
    fs::rename(&partial, path).map_err(write_error)?;
    info!(path = %path.display(), peer = %keypair.public().to_peer_id(), "created a new node identity");
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mafalda-identity-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn creates_with_mode_0600_then_loads_the_same_identity() {
        let dir = temp_dir("create");
        let path = dir.join("keys/node.key");
        let created = load_or_create(&path).expect("create");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load_or_create(&path).expect("load");
        assert_eq!(created.public().to_peer_id(), loaded.public().to_peer_id());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn malformed_file_is_an_error_and_is_left_alone() {
        let dir = temp_dir("malformed");
        let path = dir.join("node.key");
        fs::write(&path, b"not a key").expect("write");
        let error = load_or_create(&path).expect_err("malformed");
        assert!(matches!(error, IdentityError::Malformed { .. }), "{error}");
        assert_eq!(fs::read(&path).expect("read"), b"not a key", "the file is not replaced");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn unreadable_path_is_a_read_error() {
        let dir = temp_dir("unreadable");
        // A directory where the file should be cannot be read as a key.
        let error = load_or_create(&dir).expect_err("directory");
        assert!(matches!(error, IdentityError::Read { .. }), "{error}");
        let _ = fs::remove_dir_all(dir);
    }
}

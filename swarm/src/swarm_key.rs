//! The pre-shared key of a private swarm (libp2p "pnet").
//!
//! Nodes given the same [`SwarmKey`] encrypt every TCP connection with it before
//! the noise handshake, so a node without the key (or with another one) cannot
//! even negotiate a protocol with them. This module owns the key: its text
//! format, loading it from a file with errors that say what is wrong, making a
//! new one, and a fingerprint that can be logged in its place.
//!
//! The text format is the one go-libp2p, rust-libp2p and IPFS (`swarm.key`) use:
//!
//! ```text
//! /key/swarm/psk/1.0.0/
//! /base16/
//! <64 hexadecimal digits: the 32-byte key>
//! ```
//!
//! The key itself is never printed by [`Debug`](std::fmt::Debug) (which shows the
//! fingerprint) and the type has no `Display`: [`SwarmKey::to_key_file`] is the
//! one deliberate way to write it out.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libp2p::pnet::PreSharedKey;
use tracing::warn;

/// First line of a swarm key file.
const HEADER: &str = "/key/swarm/psk/1.0.0/";
/// Second line: the only encoding read and written here.
const ENCODING: &str = "/base16/";
/// Bytes in a key.
const KEY_BYTES: usize = 32;

/// A private swarm's pre-shared key (32 random bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SwarmKey(PreSharedKey);

impl SwarmKey {
    /// A fresh random key (from the operating system's cryptographic generator).
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// The key made of these 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(PreSharedKey::new(bytes))
    }

    /// Reads a key file (see the [module](self) documentation for its format).
    /// Warns when the file is readable by other users.
    pub fn load(path: &Path) -> Result<Self, SwarmKeyError> {
        let text = fs::read_to_string(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SwarmKeyError::Missing { path: path.to_owned() },
            _ => SwarmKeyError::Read { path: path.to_owned(), source },
        })?;
        let key = text.parse().map_err(|source| SwarmKeyError::Malformed { path: path.to_owned(), source })?;
        if let Ok(metadata) = fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            warn!(path = %path.display(), mode = format!("{:o}", metadata.permissions().mode() & 0o777),
                  "swarm key file is readable by others; chmod 600 it");
        }
        Ok(key)
    }

    /// The key in the key file format, ending with a newline. This is the secret:
    /// write it to a file only other nodes of the swarm may read, never to logs.
    pub fn to_key_file(&self) -> String {
        self.0.to_key_file()
    }

    /// A fingerprint of the key, safe to log: 32 hex digits, the same as
    /// go-libp2p's, so operators can check two nodes hold the same key.
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint().to_string()
    }

    /// The key as libp2p's pnet takes it.
    pub(crate) fn pre_shared_key(&self) -> PreSharedKey {
        self.0
    }
}

impl std::fmt::Debug for SwarmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

impl FromStr for SwarmKey {
    type Err = SwarmKeyFormatError;

    /// Parses the key file format. Lines may end with `\r\n` and trailing spaces;
    /// blank lines after the key are allowed, anything else is not.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut lines = text.lines().map(str::trim_end);
        if lines.next() != Some(HEADER) {
            return Err(SwarmKeyFormatError::BadHeader);
        }
        match lines.next() {
            Some(ENCODING) => {}
            Some(_) => return Err(SwarmKeyFormatError::UnsupportedEncoding),
            None => return Err(SwarmKeyFormatError::MissingKey),
        }
        let hex = lines.next().filter(|line| !line.is_empty()).ok_or(SwarmKeyFormatError::MissingKey)?;
        if lines.any(|line| !line.is_empty()) {
            return Err(SwarmKeyFormatError::TrailingData);
        }
        let digits: Vec<u8> = hex
            .chars()
            .enumerate()
            .map(|(position, c)| {
                c.to_digit(16).and_then(|d| u8::try_from(d).ok()).ok_or(SwarmKeyFormatError::BadHex { position })
            })
            .collect::<Result<_, _>>()?;
        if digits.len() != KEY_BYTES * 2 {
            return Err(SwarmKeyFormatError::WrongLength { digits: digits.len() });
        }
        let mut bytes = [0u8; KEY_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (pair[0] << 4) | pair[1];
        }
        Ok(Self::from_bytes(bytes))
    }
}

/// Why text is not a swarm key. The messages never quote the text, which may be
/// (part of) a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmKeyFormatError {
    /// The first line is not `/key/swarm/psk/1.0.0/`.
    #[error("the first line must be {HEADER}")]
    BadHeader,
    /// The second line names an encoding other than `/base16/`.
    #[error("the second line must be {ENCODING} (the only key encoding supported)")]
    UnsupportedEncoding,
    /// There is no key line after the header.
    #[error("the key (third line) is missing")]
    MissingKey,
    /// A character of the key is not a hexadecimal digit.
    #[error("the key has a character that is not a hex digit at position {position}")]
    BadHex {
        /// Position (from 0) of the first bad character in the key line.
        position: usize,
    },
    /// The key does not have 64 hex digits (32 bytes).
    #[error("the key has {digits} hex digits, expected 64")]
    WrongLength {
        /// How many digits it has.
        digits: usize,
    },
    /// Non-blank lines follow the key.
    #[error("unexpected lines after the key")]
    TrailingData,
}

/// Why a swarm key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmKeyError {
    /// There is no file at the path.
    #[error("swarm key file {path} does not exist")]
    Missing {
        /// The key file.
        path: PathBuf,
    },
    /// The file exists but could not be read (permissions, a directory, not UTF-8).
    #[error("cannot read swarm key file {path}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file does not hold a swarm key.
    #[error("swarm key file {path} is malformed")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its content.
        source: SwarmKeyFormatError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key_file(hex: &str) -> String {
        format!("{HEADER}\n{ENCODING}\n{hex}\n")
    }

    #[test]
    fn parses_a_good_key_in_any_line_ending_and_case() {
        let expected = SwarmKey::from_bytes(std::array::from_fn(|i| i as u8));
        assert_eq!(key_file(HEX).parse(), Ok(expected));
        assert_eq!(key_file(&HEX.to_uppercase()).parse(), Ok(expected));
        let crlf = format!("{HEADER}\r\n{ENCODING}\r\n{HEX}\r\n\r\n");
        assert_eq!(crlf.parse(), Ok(expected));
        let no_final_newline = format!("{HEADER}\n{ENCODING}\n{HEX}");
        assert_eq!(no_final_newline.parse(), Ok(expected));
    }

    #[test]
    fn refuses_every_bad_case_with_its_own_error() {
        use SwarmKeyFormatError::*;
        let parse = |text: &str| text.parse::<SwarmKey>().expect_err(text);
        assert_eq!(parse(""), BadHeader);
        assert_eq!(parse(HEX), BadHeader, "a bare hex key has no header");
        assert_eq!(parse(&key_file(HEX).replace("1.0.0", "2.0.0")), BadHeader);
        assert_eq!(parse(&key_file(HEX).replace("/base16/", "/base64/")), UnsupportedEncoding);
        assert_eq!(parse(&format!("{HEADER}\n")), MissingKey);
        assert_eq!(parse(&format!("{HEADER}\n{ENCODING}\n")), MissingKey);
        assert_eq!(parse(&format!("{HEADER}\n{ENCODING}\n\n{HEX}\n")), MissingKey);
        assert_eq!(parse(&key_file(&HEX.replace("0a", "0g"))), BadHex { position: 21 });
        assert_eq!(parse(&key_file(&HEX.replace("0a", "0é"))), BadHex { position: 21 }, "not a byte index");
        assert_eq!(parse(&key_file(&format!(" {HEX}"))), BadHex { position: 0 });
        assert_eq!(parse(&key_file(&HEX[..62])), WrongLength { digits: 62 });
        assert_eq!(parse(&key_file(&format!("{HEX}00"))), WrongLength { digits: 66 });
        assert_eq!(parse(&key_file(&HEX[..63])), WrongLength { digits: 63 });
        assert_eq!(parse(&format!("{}more\n", key_file(HEX))), TrailingData);
    }

    #[test]
    fn generate_print_parse_round_trips_and_keys_differ() {
        let key = SwarmKey::generate();
        let text = key.to_key_file();
        assert!(text.starts_with("/key/swarm/psk/1.0.0/\n/base16/\n"), "{text}");
        assert_eq!(text.lines().nth(2).map(str::len), Some(64));
        assert_eq!(text.parse(), Ok(key));
        // libp2p's own parser reads what we print, and we read what it prints.
        assert_eq!(text.parse::<PreSharedKey>().ok(), Some(key.pre_shared_key()));
        assert_eq!(key.pre_shared_key().to_string().parse(), Ok(key));
        assert_ne!(SwarmKey::generate(), key);
    }

    #[test]
    fn debug_and_fingerprint_do_not_reveal_the_key() {
        let key: SwarmKey = key_file(HEX).parse().expect("key");
        let fingerprint = key.fingerprint();
        assert_eq!(fingerprint.len(), 32);
        assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        let debug = format!("{key:?}");
        assert!(debug.contains(&fingerprint) && !debug.contains(HEX), "{debug}");
        assert_ne!(SwarmKey::generate().fingerprint(), fingerprint);
    }

    #[test]
    fn load_names_the_file_and_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("mafalda-swarm-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let missing = dir.join("absent.key");
        let error = SwarmKey::load(&missing).expect_err("missing");
        assert!(matches!(&error, SwarmKeyError::Missing { path } if *path == missing), "{error}");
        assert!(error.to_string().contains("absent.key"), "{error}");

        let bad = dir.join("bad.key");
        fs::write(&bad, key_file(&HEX[..10])).expect("write");
        let error = SwarmKey::load(&bad).expect_err("malformed");
        assert!(
            matches!(&error, SwarmKeyError::Malformed { path, source: SwarmKeyFormatError::WrongLength { digits: 10 } } if *path == bad),
            "{error}"
        );
        // The message names the file; the cause is its source (shown by `{:#}` chains, not repeated).
        assert!(error.to_string().contains("bad.key"), "{error}");
        let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
        assert!(cause.contains("10 hex digits"), "{cause}");

        let error = SwarmKey::load(&dir).expect_err("a directory");
        assert!(matches!(error, SwarmKeyError::Read { .. }), "{error}");

        let good = dir.join("swarm.key");
        let key = SwarmKey::generate();
        fs::write(&good, key.to_key_file()).expect("write");
        assert_eq!(SwarmKey::load(&good).expect("load"), key);
        let _ = fs::remove_dir_all(dir);
    }
}

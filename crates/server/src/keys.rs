//! The access key and the development certificate.
//!
//! The access key is 32 random bytes from the operating system, kept as 64 hex
//! characters in `<data_dir>/access.key` with mode 0600. It signs access tokens and is
//! the bearer secret of the identity REST API. It is made on first start and reused
//! after; a key file others can read is tightened to 0600 (with a warning), and one
//! that is not 64 hex characters is refused rather than replaced, so a typo never
//! silently invalidates every token in circulation.
//!
//! The development certificate is self-signed for `localhost` and `127.0.0.1`, made
//! fresh at every start; clients pin it by its SHA-256 fingerprint.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ringwire_signaling::TokenKey;
use sha2::{Digest as _, Sha256};

/// The access key's file name inside the data directory.
pub const ACCESS_KEY_FILE: &str = "access.key";

/// Length of the access key in bytes.
pub const ACCESS_KEY_LEN: usize = 32;

/// The server's secret: signs tokens, authenticates REST API calls. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey([u8; ACCESS_KEY_LEN]);

/// The access key could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing the key file or data directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but does not hold 64 hex characters.
    #[error("{} does not hold a 64-character hex key", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// The key file does not exist (only [`AccessKey::load`] says this).
    #[error("no access key at {}; start `ringwire serve` once to make one", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The operating system's random source failed.
    #[error("os random source: {0}")]
    Random(getrandom::Error),
    /// The development certificate could not be made.
    #[error("development certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// A TLS certificate (DER) and its private key (PKCS#8 DER).
#[derive(Clone)]
pub(crate) struct Certificate {
    pub(crate) cert_der: Vec<u8>,
    pub(crate) key_der: Vec<u8>,
}

impl AccessKey {
    /// Reads `<data_dir>/access.key`, or makes it (and the directory, mode 0700) when
    /// it does not exist.
    ///
    /// # Errors
    /// [`KeyError::Io`], [`KeyError::Corrupt`] or [`KeyError::Random`].
    pub fn load_or_create(data_dir: &Path) -> Result<AccessKey, KeyError> {
        let path = data_dir.join(ACCESS_KEY_FILE);
        match Self::load(data_dir) {
            Err(KeyError::Missing { .. }) => {}
            other => return other,
        }
        create_private_dir(data_dir)?;
        let mut bytes = [0u8; ACCESS_KEY_LEN];
        getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
        let key = AccessKey(bytes);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                writeln!(file, "{}", key.to_hex()).map_err(io)?;
                file.sync_all().map_err(io)?;
                tracing::info!(path = %path.display(), "generated a new access key");
                Ok(key)
            }
            // Another process made it between our read and our create: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(data_dir),
            Err(e) => Err(io(e)),
        }
    }

    /// Reads `<data_dir>/access.key`, tightening its permissions to 0600 when others
    /// can read it.
    ///
    /// # Errors
    /// [`KeyError::Missing`], [`KeyError::Io`] or [`KeyError::Corrupt`].
    pub fn load(data_dir: &Path) -> Result<AccessKey, KeyError> {
        let path = data_dir.join(ACCESS_KEY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing { path });
            }
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        fix_permissions(&path)?;
        Self::from_hex(text.trim()).ok_or(KeyError::Corrupt { path })
    }

    /// Parses 64 hex characters.
    pub fn from_hex(hex: &str) -> Option<AccessKey> {
        let bytes = hex.as_bytes();
        if bytes.len() != ACCESS_KEY_LEN * 2 {
            return None;
        }
        let mut key = [0u8; ACCESS_KEY_LEN];
        for (out, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            *out = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(AccessKey(key))
    }

    /// The key as 64 lower-case hex characters (the REST API's bearer secret).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The key that signs and verifies access tokens.
    pub fn token_key(&self) -> TokenKey {
        TokenKey::new(&self.0).expect("an access key is 32 bytes, the minimum token key length")
    }

    /// Compares `candidate` (hex) with the key in time independent of where they differ.
    pub fn matches_hex(&self, candidate: &str) -> bool {
        let Some(other) = AccessKey::from_hex(candidate) else {
            return false;
        };
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(..)")
    }
}

impl Certificate {
    /// A self-signed certificate for `localhost` and `127.0.0.1`.
    pub(crate) fn self_signed() -> Result<Certificate, KeyError> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names)?;
        Ok(Certificate {
            cert_der: certified.cert.der().to_vec(),
            key_der: certified.signing_key.serialize_der(),
        })
    }

    /// SHA-256 of the DER certificate as upper-case hex pairs joined by colons
    /// (`AB:CD:..`), the form `openssl x509 -fingerprint -sha256` and SDP use.
    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// SHA-256 fingerprint of a DER certificate, `AB:CD:..`.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let parts: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

/// Random bytes from the operating system, as lower-case hex.
pub(crate) fn random_hex(len: usize) -> Result<String, KeyError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
    Ok(hex(&bytes))
}

/// A random `u64` from the operating system.
pub(crate) fn random_u64() -> Result<u64, KeyError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
    Ok(u64::from_le_bytes(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_owned(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io)
}

#[cfg(unix)]
fn fix_permissions(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "access key was readable by others; setting mode 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn fix_permissions(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        assert!(matches!(
            AccessKey::load(&data),
            Err(KeyError::Missing { .. })
        ));
        let first = AccessKey::load_or_create(&data).unwrap();
        let second = AccessKey::load_or_create(&data).unwrap();
        assert_eq!(first, second);
        assert!(first.matches_hex(&first.to_hex()));
        assert!(!first.matches_hex(&"00".repeat(32)));
        assert!(!first.matches_hex("short"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let file = data.join(ACCESS_KEY_FILE);
            assert_eq!(mode(&file), 0o600);
            fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(AccessKey::load(&data).unwrap(), first);
            assert_eq!(mode(&file), 0o600);
        }
    }

    #[test]
    fn corrupt_key_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ACCESS_KEY_FILE), "not hex\n").unwrap();
        assert!(matches!(
            AccessKey::load_or_create(dir.path()),
            Err(KeyError::Corrupt { .. })
        ));
        assert_eq!(
            fs::read_to_string(dir.path().join(ACCESS_KEY_FILE)).unwrap(),
            "not hex\n"
        );
    }

    #[test]
    fn certificate_and_fingerprint() {
        let cert = Certificate::self_signed().unwrap();
        let fp = cert.fingerprint();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(fp, fingerprint(&cert.cert_der));
        assert!(!cert.key_der.is_empty());
    }
}

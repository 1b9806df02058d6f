//! The `[rgpd]` table: where the ledger's signing key comes from. The key signs chain heads
//! and access exports; whoever holds it can sign a forged history, so it is read from the
//! environment or a file only its owner can read, and the embedded default (a key created in
//! the data dir) is for trying the product, not for production.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::proof::Signer;

/// The environment variable that holds the signing key (base64 of its 32-byte seed).
pub const SIGNING_KEY_ENV: &str = "CONSENT_LEDGER_SIGNING_KEY";
/// The embedded default's key file, in the data dir.
pub const DEFAULT_KEY_FILE: &str = "signing.key";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RgpdConfig {
    /// A file holding the signing key (base64 of its 32-byte seed), mode 0600 or stricter.
    /// The same key for every instance of one deployment.
    pub signing_key_file: Option<PathBuf>,
}

impl RgpdConfig {
    /// The signing key: from `CONSENT_LEDGER_SIGNING_KEY`, else `signing_key_file`, else the
    /// embedded default's `DATA_DIR/signing.key`, created (0600) on first use with a warning.
    pub fn signer(&self, data_dir: &Path) -> Result<Signer, ConfigError> {
        if let Ok(value) = std::env::var(SIGNING_KEY_ENV) {
            return parse_seed(&value, SIGNING_KEY_ENV);
        }
        if let Some(path) = &self.signing_key_file {
            return read_key_file(path);
        }
        let path = data_dir.join(DEFAULT_KEY_FILE);
        if path.exists() {
            return read_key_file(&path);
        }
        let (seed, signer) = Signer::generate()
            .map_err(|e| ConfigError::Invalid(format!("cannot generate a signing key: {e}")))?;
        std::fs::create_dir_all(data_dir).map_err(|e| key_error(&path, e))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| key_error(&path, e))?;
        writeln!(file, "{}", B64.encode(seed)).map_err(|e| key_error(&path, e))?;
        file.sync_all().map_err(|e| key_error(&path, e))?;
        tracing::warn!(
            path = %path.display(),
            "created a signing key in the data dir; production keeps it elsewhere ([rgpd] signing_key_file or CONSENT_LEDGER_SIGNING_KEY), the same for every instance"
        );
        Ok(signer)
    }
}

fn key_error(path: &Path, e: std::io::Error) -> ConfigError {
    ConfigError::Invalid(format!("signing key file {}: {e}", path.display()))
}

fn read_key_file(path: &Path) -> Result<Signer, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| key_error(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::Invalid(format!(
            "signing key file {} has mode {mode:o}: it must be readable by its owner only (chmod 600)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    parse_seed(&text, &path.display().to_string())
}

fn parse_seed(text: &str, from: &str) -> Result<Signer, ConfigError> {
    let seed: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "the signing key in {from} is not base64 of 32 bytes"
            ))
        })?;
    Ok(Signer::from_seed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_creates_a_private_key_once_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = RgpdConfig::default();
        let first = config.signer(dir.path()).unwrap().public_key();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(config.signer(dir.path()).unwrap().public_key(), first);
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, B64.encode([1u8; 32])).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = RgpdConfig {
            signing_key_file: Some(path.clone()),
        };
        let err = config.signer(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(config.signer(dir.path()).is_ok());
    }
}

//! The `[rgpd]` table: where the ledger's signing key and master key come from. The signing
//! key signs chain heads and access exports; whoever holds it can sign a forged history. The
//! master key wraps every data key; whoever holds it with a copy of the data dir reads every
//! personal field, and losing it is erasing everyone. So both are read from the environment
//! or a file only its owner can read, and the embedded default (keys created in the data dir)
//! is for trying the product, not for production.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::proof::Signer;
use crate::rgpd::MasterKey;

/// The environment variable that holds the signing key (base64 of its 32-byte seed).
pub const SIGNING_KEY_ENV: &str = "CONSENT_LEDGER_SIGNING_KEY";
/// The embedded default's key file, in the data dir.
pub const DEFAULT_KEY_FILE: &str = "signing.key";
/// The environment variable that holds the master key (base64 of its 32 bytes).
pub const MASTER_KEY_ENV: &str = "CONSENT_LEDGER_MASTER_KEY";
/// The embedded default's master key file, in the data dir.
pub const DEFAULT_MASTER_KEY_FILE: &str = "master.key";

/// Where the master key came from: `rotate-master-key` replaces the embedded default's file
/// itself, and services warn at start while it is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    Env,
    File(PathBuf),
    /// `DATA_DIR/master.key`; `created` on this start.
    Embedded {
        path: PathBuf,
        created: bool,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RgpdConfig {
    /// A file holding the signing key (base64 of its 32-byte seed), mode 0600 or stricter.
    /// The same key for every instance of one deployment.
    pub signing_key_file: Option<PathBuf>,
    /// A file holding the master key (base64 of its 32 bytes), mode 0600 or stricter. Keep a
    /// copy apart from the data dir's backups: without it no personal field can be read.
    pub master_key_file: Option<PathBuf>,
    /// Days after a person's last event (in event time) until their message texts are erased
    /// by destroying their text keys (default 1095: the CNIL keeps opposition data 3 years).
    pub retention_days: Option<u32>,
    /// Days a dead letter keeps the original record it rejected (default 30): long enough to
    /// fix and replay it, then the original (a number, a text) is purged. Also the
    /// `retention.ms` of the dead-letter topic the service creates.
    pub dead_letter_days: Option<u32>,
}

/// The default retention of message texts, in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 1095;

/// The default time a dead letter keeps its original, in days.
pub const DEFAULT_DEAD_LETTER_DAYS: u32 = 30;

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
        write_private(&path, &B64.encode(seed), true).map_err(|e| key_error(&path, e))?;
        tracing::warn!(
            path = %path.display(),
            "created a signing key in the data dir; production keeps it elsewhere ([rgpd] signing_key_file or CONSENT_LEDGER_SIGNING_KEY), the same for every instance"
        );
        Ok(signer)
    }
}

impl RgpdConfig {
    /// The retention of message texts, checked: at least one day.
    pub fn retention(&self) -> Result<chrono::Duration, ConfigError> {
        match self.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS) {
            0 => Err(ConfigError::Invalid(
                "rgpd.retention_days must be at least 1".into(),
            )),
            days => Ok(chrono::Duration::days(i64::from(days))),
        }
    }

    /// How long dead letters keep their originals, checked: at least one day.
    pub fn dead_letter_retention(&self) -> Result<chrono::Duration, ConfigError> {
        match self.dead_letter_days.unwrap_or(DEFAULT_DEAD_LETTER_DAYS) {
            0 => Err(ConfigError::Invalid(
                "rgpd.dead_letter_days must be at least 1".into(),
            )),
            days => Ok(chrono::Duration::days(i64::from(days))),
        }
    }

    /// The master key: from `CONSENT_LEDGER_MASTER_KEY`, else `master_key_file`, else the
    /// embedded default's `DATA_DIR/master.key`, created (0600) on first use. The caller warns
    /// about the embedded default (see [`MasterKeySource`]), once, at start.
    pub fn master_key(&self, data_dir: &Path) -> Result<(MasterKey, MasterKeySource), ConfigError> {
        if let Ok(value) = std::env::var(MASTER_KEY_ENV) {
            return Ok((parse_master(&value, MASTER_KEY_ENV)?, MasterKeySource::Env));
        }
        if let Some(path) = &self.master_key_file {
            let key = read_master_key_file(path)?;
            return Ok((key, MasterKeySource::File(path.clone())));
        }
        let path = data_dir.join(DEFAULT_MASTER_KEY_FILE);
        if path.exists() {
            let key = read_master_key_file(&path)?;
            return Ok((
                key,
                MasterKeySource::Embedded {
                    path,
                    created: false,
                },
            ));
        }
        let key = MasterKey::generate();
        std::fs::create_dir_all(data_dir).map_err(|e| master_error(&path, e))?;
        write_private(&path, &key.to_base64(), true).map_err(|e| master_error(&path, e))?;
        Ok((
            key,
            MasterKeySource::Embedded {
                path,
                created: true,
            },
        ))
    }
}

/// Reads a master key file, refusing one that others may read.
pub fn read_master_key_file(path: &Path) -> Result<MasterKey, ConfigError> {
    let text = read_private(path, "master key").map_err(|e| match e {
        Private::Io(e) => master_error(path, e),
        Private::Mode(detail) => ConfigError::Invalid(detail),
    })?;
    parse_master(&text, &path.display().to_string())
}

/// Writes `text` to a file readable by its owner only, fsynced. A key file is read at every
/// start, so a kill -9 must never leave one empty or cut: the text is written and fsynced
/// beside it, then linked in (`create_new`: refused if the file exists, as when two processes
/// start at once) or renamed over it, and the directory is fsynced.
pub fn write_private(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    drop(file);
    let placed = if create_new {
        std::fs::hard_link(&tmp, path)
    } else {
        std::fs::rename(&tmp, path)
    };
    // After a rename there is nothing left to remove; after a refused link, the copy goes.
    let _ = std::fs::remove_file(&tmp);
    placed?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

fn parse_master(text: &str, from: &str) -> Result<MasterKey, ConfigError> {
    MasterKey::from_base64(text).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "the master key in {from} is not base64 of 32 bytes"
        ))
    })
}

fn master_error(path: &Path, e: std::io::Error) -> ConfigError {
    ConfigError::Invalid(format!("master key file {}: {e}", path.display()))
}

fn key_error(path: &Path, e: std::io::Error) -> ConfigError {
    ConfigError::Invalid(format!("signing key file {}: {e}", path.display()))
}

enum Private {
    Io(std::io::Error),
    Mode(String),
}

/// The text of a key file, refused when its mode lets anyone but its owner read it.
fn read_private(path: &Path, what: &str) -> Result<String, Private> {
    let meta = std::fs::metadata(path).map_err(Private::Io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Private::Mode(format!(
            "{what} file {} has mode {mode:o}: it must be readable by its owner only (chmod 600)",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(Private::Io)
}

fn read_key_file(path: &Path) -> Result<Signer, ConfigError> {
    let text = read_private(path, "signing key").map_err(|e| match e {
        Private::Io(e) => key_error(path, e),
        Private::Mode(detail) => ConfigError::Invalid(detail),
    })?;
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
            ..RgpdConfig::default()
        };
        let err = config.signer(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(config.signer(dir.path()).is_ok());
    }

    #[test]
    fn the_embedded_master_key_is_created_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = RgpdConfig::default();
        let (first, source) = config.master_key(dir.path()).unwrap();
        let path = dir.path().join(DEFAULT_MASTER_KEY_FILE);
        assert_eq!(
            source,
            MasterKeySource::Embedded {
                path: path.clone(),
                created: true
            }
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, source) = config.master_key(dir.path()).unwrap();
        assert_eq!(again.key_check(), first.key_check());
        assert_eq!(
            source,
            MasterKeySource::Embedded {
                path,
                created: false
            }
        );
    }

    #[test]
    fn a_master_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master");
        std::fs::write(&path, MasterKey::generate().to_base64().as_str()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let config = RgpdConfig {
            master_key_file: Some(path.clone()),
            ..RgpdConfig::default()
        };
        let err = config.master_key(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("master key file") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, source) = config.master_key(dir.path()).unwrap();
        assert_eq!(source, MasterKeySource::File(path));
        assert!(!dir.path().join(DEFAULT_MASTER_KEY_FILE).exists());
    }

    /// A key file is whole or absent: written beside, then linked or renamed into place.
    #[test]
    fn a_key_file_is_placed_whole_refused_over_an_existing_one_and_leaves_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        write_private(&path, "first", true).unwrap();
        let err = write_private(&path, "second", true).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        write_private(&path, "third", false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("master.key")]);
    }
}

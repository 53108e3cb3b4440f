//! The token cache: one JSON file per (discovery URL, client id) in the user's cache directory, readable only by
//! the user (0600 in a 0700 directory), replaced atomically, with a lock file so two runs never refresh with the
//! same rotating refresh token (which makes providers such as the test provider revoke the whole grant).

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::oauth::{Secret, TokenResponse, serialize_exposed};

/// Format version of the cache file; a file of another version is ignored (and replaced at the next login).
const CACHE_VERSION: u32 = 1;
/// An access token this close to its expiry is refreshed first, so it cannot expire on its way to the API.
const REFRESH_MARGIN_SECS: u64 = 60;

/// Why the cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading failed for a reason other than "not there".
    #[error("cannot read the token cache {}: {source}", path.display())]
    Read {
        /// The cache file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory, the file or the lock cannot be written.
    #[error("cannot write the token cache {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// [`serialize_exposed`] for an optional secret.
fn serialize_optional_exposed<S: serde::Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serialize_exposed(secret, serializer),
        None => serializer.serialize_none(),
    }
}

/// What is kept between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedTokens {
    /// [`CACHE_VERSION`].
    pub version: u32,
    /// The provider the tokens came from (part of the key, repeated to detect a mismatch).
    pub discovery_url: String,
    /// The client they were issued to (part of the key).
    pub client_id: String,
    /// The token sent to the API.
    #[serde(serialize_with = "serialize_exposed")]
    pub access_token: Secret,
    /// The token that gets a new access token without a new login.
    #[serde(serialize_with = "serialize_optional_exposed")]
    pub refresh_token: Option<Secret>,
    /// When the access token expires, in seconds since the Unix epoch; unknown when the provider did not say.
    pub expires_at: Option<u64>,
    /// Granted scopes, when the provider said.
    pub scope: Option<String>,
    /// Who logged in, from the ID token, for messages only.
    pub user: Option<String>,
}

impl CachedTokens {
    /// Whether the access token is still worth sending: unknown expiry counts as valid (the API will say).
    pub fn fresh(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| at > now.saturating_add(REFRESH_MARGIN_SECS))
    }

    /// Whether the access token is past its expiry (not merely close to it).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The cache entry of one provider and client.
#[derive(Debug, Clone)]
pub struct TokenCache {
    dir: PathBuf,
    path: PathBuf,
    lock_path: PathBuf,
    discovery_url: String,
    client_id: String,
}

/// Held while refreshing; dropping it releases the lock.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl TokenCache {
    /// The entry for tokens of `client_id` from the provider at `discovery_url`, in `dir`.
    pub fn new(dir: &Path, discovery_url: &Url, client_id: &str) -> Self {
        let digest = Sha256::digest(format!("{discovery_url}\n{client_id}").as_bytes());
        let name: String = digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect();
        Self {
            dir: dir.to_owned(),
            path: dir.join(format!("tokens-{name}.json")),
            lock_path: dir.join(format!("tokens-{name}.lock")),
            discovery_url: discovery_url.to_string(),
            client_id: client_id.to_owned(),
        }
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Turns a token answer into a cache entry. A provider that does not rotate refresh tokens sends none on
    /// refresh: the previous one stays valid and is kept.
    pub fn entry(&self, tokens: TokenResponse, previous: Option<&CachedTokens>, user: Option<String>) -> CachedTokens {
        CachedTokens {
            version: CACHE_VERSION,
            discovery_url: self.discovery_url.clone(),
            client_id: self.client_id.clone(),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token.or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at: tokens.expires_in.map(|secs| unix_now().saturating_add(secs)),
            scope: tokens.scope.or_else(|| previous.and_then(|p| p.scope.clone())),
            user: user.or_else(|| previous.and_then(|p| p.user.clone())),
        }
    }

    /// The cached tokens, if any. A damaged file, one of another version or one for another key is treated as
    /// absent (and overwritten at the next login) rather than failing every command.
    pub fn load(&self) -> Result<Option<CachedTokens>, CacheError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Read { path: self.path.clone(), source }),
        };
        match serde_json::from_str::<CachedTokens>(&text) {
            Ok(tokens)
                if tokens.version == CACHE_VERSION
                    && tokens.discovery_url == self.discovery_url
                    && tokens.client_id == self.client_id =>
            {
                Ok(Some(tokens))
            }
            Ok(_) => {
                tracing::debug!("ignoring token cache {}: another version or key", self.path.display());
                Ok(None)
            }
            Err(error) => {
                tracing::debug!("ignoring damaged token cache {}: {error}", self.path.display());
                Ok(None)
            }
        }
    }

    /// Writes `tokens` atomically (a temporary file renamed over the old one), readable only by the user.
    pub fn store(&self, tokens: &CachedTokens) -> Result<(), CacheError> {
        self.create_dir()?;
        let write_error = |source| CacheError::Write { path: self.path.clone(), source };
        let temporary = self.path.with_extension(format!("json.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        let json = serde_json::to_vec_pretty(tokens).map_err(|error| write_error(error.into()))?;
        let mut file = private_file(&temporary).map_err(write_error)?;
        let written = file.write_all(&json).and_then(|()| file.sync_all());
        drop(file);
        if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, &self.path)) {
            let _ = std::fs::remove_file(&temporary);
            return Err(write_error(error));
        }
        Ok(())
    }

    /// Forgets the cached tokens; says whether there were any.
    pub fn remove(&self) -> Result<bool, CacheError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CacheError::Write { path: self.path.clone(), source }),
        }
    }

    /// Waits for the exclusive lock of this entry (other runs of the client hold it while refreshing).
    pub async fn lock(&self) -> Result<CacheLock, CacheError> {
        self.create_dir()?;
        let path = self.lock_path.clone();
        let error_path = path.clone();
        let locked = tokio::task::spawn_blocking(move || {
            let file = private_file_keep(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|join| std::io::Error::other(join.to_string()))
        .and_then(|result| result);
        locked.map(|file| CacheLock { _file: file }).map_err(|source| CacheError::Write { path: error_path, source })
    }

    /// Creates the cache directory only the user may enter, and makes it so when it already existed with looser
    /// permissions (made by hand, by an older client, under another umask): the tokens inside are the user's login.
    fn create_dir(&self) -> Result<(), CacheError> {
        let error = |source| CacheError::Write { path: self.dir.clone(), source };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir).map_err(error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&self.dir).map_err(error)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
            }
        }
        Ok(())
    }
}

/// A new, empty file only the user can read and write.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The lock file, created (only the user can read and write it) when missing, kept otherwise.
fn private_file_keep(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;
    use tempfile::TempDir;

    use super::*;

    fn cache(dir: &TempDir, discovery: &str, client: &str) -> TokenCache {
        TokenCache::new(&dir.path().join("cache"), &Url::parse(discovery).expect("url"), client)
    }

    fn response(access: &str, refresh: Option<&str>, expires_in: Option<u64>) -> TokenResponse {
        TokenResponse {
            access_token: Secret::from(access),
            token_type: "Bearer".into(),
            expires_in,
            refresh_token: refresh.map(Secret::from),
            id_token: None,
            scope: Some("read".into()),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_directory_that_existed_with_looser_permissions_is_made_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new().expect("tmp");
        let cache = cache(&dir, "https://idp/.well-known/openid-configuration", "cli");
        let folder = dir.path().join("cache");
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        cache.store(&cache.entry(response("at", None, None), None, None)).expect("stored");
        assert_eq!(std::fs::metadata(&folder).expect("metadata").permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn entries_round_trip_privately_and_are_keyed_by_provider_and_client() {
        let dir = TempDir::new().expect("tmp");
        let cache = cache(&dir, "https://idp/.well-known/openid-configuration", "cli");
        assert!(cache.load().expect("readable").is_none());
        let entry = cache.entry(response("at", Some("rt"), Some(3600)), None, Some("ada".into()));
        cache.store(&entry).expect("stored");
        let loaded = cache.load().expect("readable").expect("present");
        assert_eq!((loaded.access_token.expose_secret(), loaded.user.as_deref()), ("at", Some("ada")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode(cache.path()), 0o600);
            assert_eq!(mode(cache.path().parent().expect("dir")), 0o700);
        }
        for other in [
            super::TokenCache::new(
                cache.path().parent().expect("dir"),
                &Url::parse("https://other/x").expect("url"),
                "cli",
            ),
            super::TokenCache::new(
                cache.path().parent().expect("dir"),
                &Url::parse("https://idp/.well-known/openid-configuration").expect("url"),
                "other-client",
            ),
        ] {
            assert_ne!(other.path(), cache.path());
            assert!(other.load().expect("readable").is_none());
        }
        assert!(cache.remove().expect("removed"));
        assert!(!cache.remove().expect("idempotent"));
    }

    #[test]
    fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
        let dir = TempDir::new().expect("tmp");
        let cache = cache(&dir, "https://idp/", "cli");
        let first = cache.entry(response("at1", Some("rt1"), Some(60)), None, Some("ada".into()));
        let second = cache.entry(response("at2", None, Some(60)), Some(&first), None);
        assert_eq!(second.refresh_token.as_ref().map(ExposeSecret::expose_secret), Some("rt1"));
        assert_eq!(second.user.as_deref(), Some("ada"));
        let rotated = cache.entry(response("at3", Some("rt3"), Some(60)), Some(&second), None);
        assert_eq!(rotated.refresh_token.as_ref().map(ExposeSecret::expose_secret), Some("rt3"));
    }

    #[test]
    fn tokens_close_to_expiry_are_not_fresh() {
        let dir = TempDir::new().expect("tmp");
        let cache = cache(&dir, "https://idp/", "cli");
        let now = unix_now();
        let mut entry = cache.entry(response("at", None, Some(3600)), None, None);
        assert!(entry.fresh(now));
        entry.expires_at = Some(now + 30);
        assert!(!entry.fresh(now), "inside the refresh margin");
        assert!(!entry.expired(now), "but not expired");
        entry.expires_at = Some(now);
        assert!(entry.expired(now));
        entry.expires_at = None;
        assert!(entry.fresh(now), "unknown expiry: let the API decide");
    }

    #[test]
    fn a_damaged_cache_file_counts_as_absent() {
        let dir = TempDir::new().expect("tmp");
        let cache = cache(&dir, "https://idp/", "cli");
        std::fs::create_dir_all(cache.path().parent().expect("dir")).expect("mkdir");
        std::fs::write(cache.path(), "{not json").expect("write");
        assert!(cache.load().expect("readable").is_none());
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = TempDir::new().expect("tmp");
        let cache = cache(&dir, "https://idp/", "cli");
        let held = cache.lock().await.expect("locked");
        let second = tokio::time::timeout(std::time::Duration::from_millis(300), cache.lock()).await;
        assert!(second.is_err(), "a second lock waits while the first is held");
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(5), cache.lock()).await.expect("free").expect("locked");
    }
}

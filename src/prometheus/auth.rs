//! Credentials for Prometheus: none, a bearer token file that is re-read when it changes, or
//! basic auth.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How to authenticate to Prometheus.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Bearer <token>`, the token read from this file. The file is checked
    /// before every query and re-read when it changed, because projected service-account
    /// tokens rotate.
    BearerFile(PathBuf),
    /// `Authorization: Basic …`.
    Basic { username: String, password: String },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::BearerFile(path) => f.debug_tuple("BearerFile").field(path).finish(),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish_non_exhaustive(),
        }
    }
}

/// Re-read the token at least this often even when the file looks unchanged, in case a
/// rotation kept the size and the modification time (coarse clocks, restored backups).
const MAX_TOKEN_AGE: Duration = Duration::from_secs(60);

/// A bearer token file and the last token read from it.
pub(crate) struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<CachedToken>>,
}

#[derive(Clone)]
struct CachedToken {
    modified: Option<SystemTime>,
    len: u64,
    read_at: Instant,
    token: String,
}

impl TokenFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The current token: the cached one while the file is unchanged, else the file re-read.
    pub(crate) async fn token(&self) -> Result<String, String> {
        // Follows symlinks, as Kubernetes' atomic writer swaps a `..data` symlink.
        let metadata = tokio::fs::metadata(&self.path)
            .await
            .map_err(|error| error.to_string())?;
        let modified = metadata.modified().ok();
        let len = metadata.len();
        if let Some(cached) = self.lock().as_ref()
            && cached.modified == modified
            && cached.len == len
            && cached.read_at.elapsed() < MAX_TOKEN_AGE
        {
            return Ok(cached.token.clone());
        }
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|error| error.to_string())?;
        let token = text.trim().to_string();
        if token.is_empty() {
            return Err("the file is empty".into());
        }
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the token contains whitespace or control characters".into());
        }
        *self.lock() = Some(CachedToken {
            modified,
            len,
            read_at: Instant::now(),
            token: token.clone(),
        });
        Ok(token)
    }

    /// Forgets the cached token, so the next query re-reads the file (after a 401).
    pub(crate) fn invalidate(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CachedToken>> {
        // A poisoned lock only means another task panicked mid-update of a cache entry.
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_is_reread_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let file = TokenFile::new(path.clone());
        assert_eq!(file.token().await.unwrap(), "first");
        // A rotation writes a new file; a different length is seen even with a coarse mtime.
        std::fs::write(&path, "second-token\n").unwrap();
        assert_eq!(file.token().await.unwrap(), "second-token");
        // Kubernetes swaps a symlink to a new file.
        let rotated = dir.path().join("token-2");
        std::fs::write(&rotated, "third-token-x\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&rotated, &path).unwrap();
        assert_eq!(file.token().await.unwrap(), "third-token-x");
    }

    #[tokio::test]
    async fn missing_or_empty_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let file = TokenFile::new(path.clone());
        assert!(file.token().await.is_err());
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(file.token().await.unwrap_err(), "the file is empty");
    }

    #[test]
    fn debug_hides_the_password() {
        let auth = Auth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}

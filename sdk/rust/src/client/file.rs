//! The mounted-file source: `Flags::load(path)`.
//!
//! A ConfigMap volume looks like this inside the container:
//!
//! ```text
//! /etc/rollgate/flags.json      -> ..data/flags.json
//! /etc/rollgate/..data          -> ..2026_11_24_08_00_00.123456789
//! /etc/rollgate/..2026_11_24_…/flags.json
//! ```
//!
//! The kubelet writes a new timestamped directory, points a new `..data_tmp` symlink at it and
//! renames `..data_tmp` over `..data`: one atomic swap, after which `flags.json` resolves to a
//! new inode. A watch on the file itself would stay on the old inode forever, so this source
//! watches the *directory* and, on any event, re-stats the path (following the symlinks) and
//! re-reads only if the resolved file's identity `(dev, inode, mtime, len)` changed. A poll on
//! the same check runs every [`LoadOptions::poll_interval`] as a fallback for file systems
//! without events and for a watcher that could not start or silently died.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, SystemTime};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::flags::{Flags, FlagsError, Shared, SourceHandle};
use crate::shards::ShardRef;

/// Environment variable naming the flag file ([`Flags::load_from_env`]).
pub const FLAGS_PATH_ENV: &str = "ROLLGATE_FLAGS_PATH";
/// Where the example Deployment mounts the ConfigMap.
pub const DEFAULT_FLAGS_PATH: &str = "/etc/rollgate/flags.json";
/// How often the polling fallback re-stats the file.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Extra attempts before a file that cannot be read counts as a failure.
const READ_RETRIES: u32 = 3;
const READ_RETRY_DELAY: Duration = Duration::from_millis(5);

/// How [`Flags::load_with`] keeps the file current.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    watch: bool,
    poll_interval: Option<Duration>,
}

impl Default for LoadOptions {
    /// File events on, polling every 5 s.
    fn default() -> Self {
        Self {
            watch: true,
            poll_interval: Some(DEFAULT_POLL_INTERVAL),
        }
    }
}

impl LoadOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to react to file-system events (inotify on Linux). Default on.
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// How often to re-stat the file whatever the events say; `None` disables polling.
    /// Default 5 s. With both events and polling off the flags are read once.
    pub fn poll_interval(mut self, interval: Option<Duration>) -> Self {
        self.poll_interval = interval.filter(|interval| !interval.is_zero());
        self
    }
}

/// What identifies the content behind the path: a new file, or the same file rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let (dev, inode) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let (dev, inode) = (0, 0);
        Self {
            dev,
            inode,
            modified: metadata.modified().ok(),
            len: metadata.len(),
        }
    }
}

/// Opens the path (following symlinks) and reads it, taking the identity from the open
/// handle so that identity and bytes always belong to the same file.
fn read_file(path: &Path) -> Result<(FileIdentity, Vec<u8>), FlagsError> {
    let read_error = |source| FlagsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let identity = FileIdentity::of(&file.metadata().map_err(read_error)?);
    let mut bytes = Vec::with_capacity(usize::try_from(identity.len).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(read_error)?;
    Ok((identity, bytes))
}

/// A shard of the sharded document whose index is at `index_path`: the file named by its key
/// beside the index, as a projected volume of the index and shard ConfigMaps lays them out.
/// A key that is not a plain file name is never read.
fn read_shard(index_path: &Path, shard: &ShardRef) -> Option<Vec<u8>> {
    let plain =
        !shard.key.is_empty() && !shard.key.starts_with('.') && !shard.key.contains(['/', '\\']);
    if !plain {
        return None;
    }
    let directory = index_path.parent().unwrap_or(Path::new("."));
    std::fs::read(directory.join(&shard.key)).ok()
}

enum Wake {
    /// Something happened in the watched directory.
    Event,
    /// The last `Flags` handle was dropped.
    Stop,
}

impl Flags {
    /// Loads the flag document at `path` (the mounted `flags.json`) and keeps it current
    /// with file events plus a 5 s poll ([`LoadOptions::default`]).
    ///
    /// A missing, unreadable or invalid file is an error here: there are no good flags to
    /// serve yet. (A ConfigMap volume is populated before the container starts, so a missing
    /// file means a wrong path or a `subPath` mount.) Later failures keep the last good flags.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, FlagsError> {
        Self::load_with(path, LoadOptions::default())
    }

    /// [`Flags::load`] with the path from `ROLLGATE_FLAGS_PATH`, or `/etc/rollgate/flags.json`.
    pub fn load_from_env() -> Result<Self, FlagsError> {
        let path = std::env::var_os(FLAGS_PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_FLAGS_PATH));
        Self::load(path)
    }

    /// [`Flags::load`] with explicit reload options.
    pub fn load_with(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self, FlagsError> {
        let path = path.as_ref().to_path_buf();
        let (identity, bytes) = read_file(&path)?;
        let shared = Arc::new(Shared::from_stored(
            format!("file {}", path.display()),
            &bytes,
            |shard| read_shard(&path, shard),
        )?);
        if !options.watch && options.poll_interval.is_none() {
            return Ok(Self::with_source(shared, None));
        }

        let (wake_tx, wake_rx) = mpsc::channel();
        let watcher = if options.watch {
            match watch_directory(&path, wake_tx.clone()) {
                Ok(watcher) => Some(watcher),
                Err(error) if options.poll_interval.is_some() => {
                    tracing::warn!(
                        origin = shared.origin(),
                        "{error}; falling back to polling every {:?}",
                        options.poll_interval.unwrap_or_default()
                    );
                    None
                }
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        let mut source = FileSource {
            path,
            identity: Some(identity),
            shared: Arc::clone(&shared),
            wake: wake_rx,
            poll_interval: options.poll_interval,
            _watcher: watcher,
        };
        thread::Builder::new()
            .name("rollgate-flags".into())
            .spawn(move || source.run())
            .map_err(FlagsError::Spawn)?;
        let stop = SourceHandle::new(move || {
            // The thread may already be gone; nothing to do then.
            let _ = wake_tx.send(Wake::Stop);
        });
        Ok(Self::with_source(shared, Some(stop)))
    }
}

/// Watches the directory that holds `path`, non-recursively: the kubelet's swap renames
/// `..data` inside it, which a watch on the file itself would never see.
fn watch_directory(
    path: &Path,
    wake: mpsc::Sender<Wake>,
) -> Result<RecommendedWatcher, FlagsError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let watch_error = |source| FlagsError::Watch {
        path: directory.clone(),
        source,
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Our own reads show up as access events; they change nothing.
        let relevant = match &event {
            Ok(event) => !matches!(event.kind, EventKind::Access(_)),
            Err(_) => true,
        };
        if relevant {
            let _ = wake.send(Wake::Event);
        }
    })
    .map_err(watch_error)?;
    watcher
        .watch(&directory, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;
    Ok(watcher)
}

struct FileSource {
    path: PathBuf,
    /// Identity of the file the current bytes came from; `None` after a failed read.
    identity: Option<FileIdentity>,
    shared: Arc<Shared>,
    wake: mpsc::Receiver<Wake>,
    poll_interval: Option<Duration>,
    /// Kept alive for as long as the thread runs; dropping it ends the watch.
    _watcher: Option<RecommendedWatcher>,
}

impl FileSource {
    fn run(&mut self) {
        loop {
            let wake = match self.poll_interval {
                Some(interval) => match self.wake.recv_timeout(interval) {
                    Ok(wake) => wake,
                    Err(mpsc::RecvTimeoutError::Timeout) => Wake::Event,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Wake::Stop,
                },
                None => self.wake.recv().unwrap_or(Wake::Stop),
            };
            if matches!(wake, Wake::Stop) {
                return;
            }
            // One check covers a burst of events (the kubelet's swap makes several).
            while let Ok(pending) = self.wake.try_recv() {
                if matches!(pending, Wake::Stop) {
                    return;
                }
            }
            self.check();
        }
    }

    /// Re-stats the path and re-reads it if it now resolves to a different file or the same
    /// file changed. Failures keep the current flags; each distinct failure counts once.
    fn check(&mut self) {
        let mut attempt = 0;
        let error = loop {
            match self.try_check() {
                Ok(()) => return,
                // A reader that resolved `..data` just before the kubelet's swap can find the
                // old directory already removed (ENOENT) for a moment: look again before
                // calling the file missing.
                Err(_) if attempt < READ_RETRIES && self.identity.is_some() => {
                    attempt += 1;
                    thread::sleep(READ_RETRY_DELAY);
                }
                Err(error) => break error,
            }
        };
        if self.identity.take().is_some() {
            self.shared.record_failure(error);
        }
    }

    fn try_check(&mut self) -> Result<(), FlagsError> {
        let metadata = std::fs::metadata(&self.path).map_err(|source| FlagsError::Read {
            path: self.path.clone(),
            source,
        })?;
        if Some(FileIdentity::of(&metadata)) == self.identity {
            return Ok(());
        }
        let (identity, bytes) = read_file(&self.path)?;
        self.identity = Some(identity);
        // A refused document is counted and logged inside `apply_stored`. Shards that do not
        // match the index yet are read again at the next event or poll, even if the index
        // itself has not changed by then.
        let applied = self
            .shared
            .apply_stored(&bytes, |shard| read_shard(&self.path, shard));
        if let Err(error) = applied
            && matches!(*error, FlagsError::Shard { .. })
        {
            self.identity = None;
        }
        Ok(())
    }
}

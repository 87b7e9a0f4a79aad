//! One writer per published ConfigMap. Every reconcile that changed what a ConfigMap should
//! hold asks for a publish; the requests form group commits. Whoever takes the writer's turn
//! renders from the cache once and writes for every request made before that render began;
//! the requests it covered return without a write of their own. A burst of N changes costs
//! about two writes instead of N, and no two writes of one ConfigMap ever interleave.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What one publish found, shared with every request it served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Why the document was not written: not even its shards would fit.
    pub too_large: Option<String>,
}

#[derive(Default)]
pub struct ConfigMapWriter {
    /// How long whoever takes the turn waits for more requests before it renders.
    window: Duration,
    /// Publish requests so far; each request's ticket is its position.
    requested: AtomicU64,
    /// The writer's turn, holding the newest ticket a successful publish covered.
    covered: tokio::sync::Mutex<u64>,
    /// What the latest successful publish found.
    last_outcome: Mutex<PublishOutcome>,
    /// The resourceVersion this writer last read or wrote: a watch event at that version
    /// is its own doing, not a hand edit.
    last_version: Mutex<Option<String>>,
    /// Digest of every entry the latest successful publish left in the ConfigMap; `None`
    /// when unknown: before the first publish, after one that did not fit, and after an
    /// edit by someone else.
    published_entries: Mutex<Option<HashMap<String, u64>>>,
    /// Counts the edits by someone else; a publish that began before one does not record
    /// its entries.
    foreign_edits: AtomicU64,
}

impl ConfigMapWriter {
    /// A writer whose publishes wait `window` for more requests to join before they render
    /// (`--publish-window`). `Default` has none.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            ..Self::default()
        }
    }

    /// Runs `publish` unless a publish that began after this call succeeds first, and
    /// returns what the publish that served this request found (`covered`: not this
    /// request's own). Everything the caller changed before calling is seen by that publish.
    /// A failed publish covers nothing: the error goes to the caller that ran it, and each
    /// waiting request takes its own turn. A publish run by this call first waits the
    /// writer's window for more requests to join.
    pub async fn publish<E, F, Fut>(&self, publish: F) -> Result<(PublishOutcome, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PublishOutcome, E>>,
    {
        self.publish_with(self.window, publish).await
    }

    /// As [`Self::publish`], without waiting the window: for a kill switch.
    pub async fn publish_now<E, F, Fut>(&self, publish: F) -> Result<(PublishOutcome, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PublishOutcome, E>>,
    {
        self.publish_with(Duration::ZERO, publish).await
    }

    async fn publish_with<E, F, Fut>(
        &self,
        window: Duration,
        publish: F,
    ) -> Result<(PublishOutcome, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PublishOutcome, E>>,
    {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= ticket {
            return Ok((self.last_outcome(), true));
        }
        if !window.is_zero() {
            tokio::time::sleep(window).await;
        }
        // Every request made up to here changed its state before asking, so the render
        // that follows sees it.
        let covers = self.requested.load(Ordering::SeqCst);
        let outcome = publish().await?;
        *self
            .last_outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = outcome.clone();
        *covered = covers;
        Ok((outcome, false))
    }

    fn last_outcome(&self) -> PublishOutcome {
        self.last_outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Taken before a publish reads the ConfigMap, and handed back to
    /// [`Self::remember_entries`].
    pub fn foreign_edits(&self) -> u64 {
        self.foreign_edits.load(Ordering::SeqCst)
    }

    /// Records what the ConfigMap holds after a successful publish (`None`: not known),
    /// unless someone else edited it since `foreign_edits` was taken.
    pub fn remember_entries(&self, foreign_edits: u64, entries: Option<HashMap<String, u64>>) {
        let mut published = self
            .published_entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *published = entries.filter(|_| self.foreign_edits() == foreign_edits);
    }

    /// The ConfigMap was changed by someone else: what it holds is no longer known.
    pub fn forget_entries(&self) {
        let mut published = self
            .published_entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.foreign_edits.fetch_add(1, Ordering::SeqCst);
        *published = None;
    }

    /// Whether the latest publish left `key` with exactly the entry of digest `digest`, and
    /// nobody else has written the ConfigMap since.
    pub fn holds(&self, key: &str, digest: u64) -> bool {
        self.published_entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .and_then(|entries| entries.get(key))
            == Some(&digest)
    }

    /// Records the ConfigMap's resourceVersion as read or written by this writer.
    pub fn remember_version(&self, version: Option<String>) {
        *self
            .last_version
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = version;
    }

    /// Whether the ConfigMap at `version` is one this writer read or wrote last.
    pub fn is_own_version(&self, version: Option<&str>) -> bool {
        version.is_some()
            && self
                .last_version
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .as_deref()
                == version
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A publish waits the window for company; a kill switch's does not.
    #[tokio::test(start_paused = true)]
    async fn a_kill_switch_does_not_wait_the_window() {
        let writer = ConfigMapWriter::new(Duration::from_millis(20));
        let began = tokio::time::Instant::now();
        writer
            .publish_now(|| async { Ok::<_, ()>(PublishOutcome::default()) })
            .await
            .unwrap();
        assert_eq!(began.elapsed(), Duration::ZERO);
        writer
            .publish(|| async { Ok::<_, ()>(PublishOutcome::default()) })
            .await
            .unwrap();
        assert_eq!(began.elapsed(), Duration::from_millis(20));
    }

    /// While one publish runs, ten more requests arrive: one publish covers all ten.
    #[tokio::test]
    async fn requests_made_during_a_publish_share_the_next_one() {
        let writer = Arc::new(ConfigMapWriter::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (writer, runs) = (writer.clone(), runs.clone());
            tokio::spawn(async move {
                writer
                    .publish(|| async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.await.ok();
                        Ok::<_, ()>(PublishOutcome::default())
                    })
                    .await
            })
        };
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let (writer, runs) = (writer.clone(), runs.clone());
                tokio::spawn(async move {
                    writer
                        .publish(|| async {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Ok::<_, ()>(PublishOutcome {
                                too_large: Some("the second publish".into()),
                            })
                        })
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok((PublishOutcome::default(), false)));
        let mut served = Vec::new();
        for request in waiting {
            served.push(request.await.unwrap().unwrap());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{served:?}");
        assert_eq!(served.iter().filter(|(_, covered)| !covered).count(), 1);
        // The covered requests learn what the publish that served them found.
        assert!(
            served
                .iter()
                .all(|(outcome, _)| outcome.too_large.as_deref() == Some("the second publish"))
        );
    }

    /// A request made before a publish that failed is not covered by it.
    #[tokio::test]
    async fn a_failed_publish_covers_nothing() {
        let writer = ConfigMapWriter::default();
        let failing = || async { Err::<PublishOutcome, _>("504") };
        let succeeding = || async { Ok::<_, &str>(PublishOutcome::default()) };
        assert_eq!(writer.publish(failing).await, Err("504"));
        let ran = Ok((PublishOutcome::default(), false));
        assert_eq!(writer.publish(succeeding).await, ran);
        // A request after a success needs a publish of its own.
        assert_eq!(writer.publish(succeeding).await, ran);
    }

    #[test]
    fn own_versions_are_recognised() {
        let writer = ConfigMapWriter::default();
        assert!(!writer.is_own_version(Some("5")));
        writer.remember_version(Some("5".into()));
        assert!(writer.is_own_version(Some("5")));
        assert!(!writer.is_own_version(Some("6")));
        assert!(!writer.is_own_version(None));
    }
}

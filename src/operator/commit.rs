//! One writer per published ConfigMap. Every reconcile that changed what a ConfigMap should
//! hold asks for a publish; the requests form group commits. Whoever takes the writer's turn
//! renders from the cache once and writes for every request made before that render began;
//! the requests it covered return without a write of their own. A burst of N changes costs
//! about two writes instead of N, and no two writes of one ConfigMap ever interleave.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rollgate_sdk::FlagDocument;

/// How a publish request was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// This request took the writer's turn and ran the publish.
    Ran,
    /// A publish that began after this request succeeded meanwhile; nothing was run.
    Covered,
}

/// What the ConfigMap held when last read: `None` when it held no document.
pub type LastRead = Option<Arc<FlagDocument>>;

#[derive(Default)]
pub struct ConfigMapWriter {
    /// Publish requests so far; each request's ticket is its position.
    requested: AtomicU64,
    /// The writer's turn, holding the newest ticket a successful publish covered.
    covered: tokio::sync::Mutex<u64>,
    /// The document as last read from the ConfigMap: what a render outside the turn (a size
    /// check) keeps for flags it cannot render itself.
    /// `None` until the first read.
    last_read: Mutex<Option<LastRead>>,
    /// The resourceVersion this writer last read or wrote: a watch event at that version
    /// is its own doing, not a hand edit.
    last_version: Mutex<Option<String>>,
}

impl ConfigMapWriter {
    /// Runs `publish` unless a publish that began after this call succeeds first. Everything
    /// the caller changed before calling is seen by the publish that covers it. A failed
    /// publish covers nothing: the error goes to the caller that ran it, and each waiting
    /// request takes its own turn.
    pub async fn publish<E, F, Fut>(&self, publish: F) -> Result<Turn, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= ticket {
            return Ok(Turn::Covered);
        }
        // Every request made up to here changed its state before asking, so the render
        // that follows sees it.
        let covers = self.requested.load(Ordering::SeqCst);
        publish().await?;
        *covered = covers;
        Ok(Turn::Ran)
    }

    /// What the last read found; `None` before the first.
    pub fn last_read(&self) -> Option<LastRead> {
        self.last_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Records what the ConfigMap held (`None`: no document) at `version`.
    pub fn remember_read(&self, document: Option<FlagDocument>, version: Option<String>) {
        *self
            .last_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(document.map(Arc::new));
        self.remember_version(version);
    }

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
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

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
                        Ok::<(), ()>(())
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
                            Ok::<(), ()>(())
                        })
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(Turn::Ran));
        let mut turns = Vec::new();
        for request in waiting {
            turns.push(request.await.unwrap().unwrap());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{turns:?}");
        assert_eq!(turns.iter().filter(|t| **t == Turn::Ran).count(), 1);
    }

    /// A request made before a publish that failed is not covered by it.
    #[tokio::test]
    async fn a_failed_publish_covers_nothing() {
        let writer = ConfigMapWriter::default();
        assert_eq!(writer.publish(|| async { Err("504") }).await, Err("504"));
        assert_eq!(
            writer.publish(|| async { Ok::<(), &str>(()) }).await,
            Ok(Turn::Ran)
        );
        // A request after a success needs a publish of its own.
        assert_eq!(
            writer.publish(|| async { Ok::<(), &str>(()) }).await,
            Ok(Turn::Ran)
        );
    }

    #[test]
    fn own_versions_are_recognised() {
        let writer = ConfigMapWriter::default();
        assert!(!writer.is_own_version(Some("5")));
        writer.remember_read(None, Some("5".into()));
        assert!(writer.is_own_version(Some("5")));
        assert!(!writer.is_own_version(Some("6")));
        assert!(!writer.is_own_version(None));
    }
}

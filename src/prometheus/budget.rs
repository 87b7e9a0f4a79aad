//! The operator's budget for analysis queries, shared by every flag and every Prometheus
//! address: at most `concurrency` queries in flight and at most `per_second` started per
//! second, evenly spaced. Queries wait their turn in arrival order; the wait is measured.
//!
//! Hand-written on tokio's clock (a semaphore and one "next start" instant) rather than
//! with a rate-limiting crate: it is a few lines, and tests can run it on tokio's paused,
//! virtual clock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::{Histogram, IntGauge};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

pub struct QueryBudget {
    in_flight: Semaphore,
    /// The time between two query starts: one second divided by the per-second budget.
    spacing: Duration,
    next_start: Mutex<Instant>,
    /// Queries waiting for their turn now.
    waiting: AtomicUsize,
    /// Above this many waiting, [`QueryBudget::backlog`] tells callers to come back later.
    max_waiting: usize,
    metrics: Option<BudgetMetrics>,
}

/// What the budget reports: how long each query waited, and how many wait now.
#[derive(Clone)]
pub struct BudgetMetrics {
    pub queue_seconds: Histogram,
    pub queued: IntGauge,
}

/// A query's turn: hold it while the query runs.
pub struct QueryTurn<'a> {
    _permit: Option<SemaphorePermit<'a>>,
    /// How long the query waited for its turn.
    pub waited: Duration,
}

impl std::fmt::Debug for QueryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryBudget")
            .field("spacing", &self.spacing)
            .finish_non_exhaustive()
    }
}

impl QueryBudget {
    /// `concurrency` and `per_second` below 1 count as 1.
    pub fn new(concurrency: usize, per_second: f64) -> Self {
        let per_second = if per_second.is_finite() {
            per_second.max(1.0)
        } else {
            1.0
        };
        Self {
            in_flight: Semaphore::new(concurrency.max(1)),
            spacing: Duration::from_secs_f64(1.0 / per_second),
            next_start: Mutex::new(Instant::now()),
            waiting: AtomicUsize::new(0),
            // About one second of queries, and never fewer than can run at once.
            max_waiting: (per_second.ceil() as usize).max(concurrency.max(1)),
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: BudgetMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// `Some(wait)` when more queries wait than the budget starts in about a second: a
    /// caller that can come back later (a reconcile holding one of the controller's slots)
    /// should, after `wait`, instead of queueing. `None`: queue now.
    pub fn backlog(&self) -> Option<Duration> {
        let waiting = self.waiting.load(Ordering::Relaxed);
        (waiting >= self.max_waiting).then(|| {
            self.spacing
                .saturating_mul(u32::try_from(waiting).unwrap_or(u32::MAX))
        })
    }

    /// Waits until a query may start: a free slot among `concurrency`, then its place in
    /// the spacing.
    pub async fn turn(&self) -> QueryTurn<'_> {
        let asked = Instant::now();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.queued.inc();
        }
        // The semaphore is never closed; `None` would only mean "no limit".
        let permit = self.in_flight.acquire().await.ok();
        let start = {
            let mut next = self
                .next_start
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let start = (*next).max(Instant::now());
            *next = start + self.spacing;
            start
        };
        tokio::time::sleep_until(start).await;
        let waited = asked.elapsed();
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.queued.dec();
            metrics.queue_seconds.observe(waited.as_secs_f64());
        }
        QueryTurn {
            _permit: permit,
            waited,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// 200 queries of 700 ms each against 4 at once and 10 per second, on virtual time:
    /// starts are at least 100 ms apart, never more than 4 run, none is dropped, and the
    /// whole batch takes what the tighter of the two limits allows.
    #[tokio::test(start_paused = true)]
    async fn the_budget_holds_on_virtual_time() {
        let budget = Arc::new(QueryBudget::new(4, 10.0));
        let running = Arc::new(AtomicUsize::new(0));
        let most_running = Arc::new(AtomicUsize::new(0));
        let began = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (budget, running, most_running) =
                (budget.clone(), running.clone(), most_running.clone());
            tasks.push(tokio::spawn(async move {
                let turn = budget.turn().await;
                let started = Instant::now();
                let now_running = running.fetch_add(1, Ordering::SeqCst) + 1;
                most_running.fetch_max(now_running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(700)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                drop(turn);
                started
            }));
        }
        let mut starts = Vec::new();
        for task in tasks {
            starts.push(task.await.expect("task ran"));
        }
        starts.sort();
        assert_eq!(starts.len(), 200);
        for pair in starts.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(100),
                "two starts {:?} apart",
                pair[1] - pair[0]
            );
        }
        assert_eq!(most_running.load(Ordering::SeqCst), 4);
        // 4 at once × 700 ms allows 5.7 per second, below the 10 per second budget:
        // 200 queries need 50 rounds of 700 ms.
        let took = Instant::now() - began;
        assert!(
            took >= Duration::from_millis(35_000) && took < Duration::from_millis(36_000),
            "took {took:?}"
        );
    }

    /// 29 queries wait at 20 per second: more than a second's worth, so a newcomer is told
    /// to come back in 1.45 s; once they have started, it may queue again.
    #[tokio::test(start_paused = true)]
    async fn a_long_queue_sends_newcomers_away() {
        let budget = Arc::new(QueryBudget::new(4, 20.0));
        assert_eq!(budget.backlog(), None);
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move {
                    drop(budget.turn().await);
                })
            })
            .collect();
        // 1 ms on: every task waits except the first, which started at once.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(budget.backlog(), Some(Duration::from_millis(29 * 50)));
        for task in tasks {
            task.await.expect("task ran");
        }
        assert_eq!(budget.backlog(), None);
    }

    /// With room to run, the per-second budget is the limit: 50 instant queries at 20 per
    /// second start over 2.45 s, 50 ms apart, and the last one waited that long.
    #[tokio::test(start_paused = true)]
    async fn the_per_second_budget_spaces_a_burst() {
        let budget = Arc::new(QueryBudget::new(64, 20.0));
        let began = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let budget = budget.clone();
            tasks.push(tokio::spawn(async move { budget.turn().await.waited }));
        }
        let mut waits = Vec::new();
        for task in tasks {
            waits.push(task.await.expect("task ran"));
        }
        waits.sort();
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[49], Duration::from_millis(2450));
        assert_eq!(Instant::now() - began, Duration::from_millis(2450));
    }
}

//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
//! reconciles and another takes over when it goes.
//!
//! The protocol is client-go's. A candidate reads the Lease and claims it with an update that
//! carries the `resourceVersion` it read, so of two candidates racing only one write lands (the
//! other gets 409 Conflict and tries again later). A claim lapses when its record has not
//! changed for `spec.leaseDurationSeconds`, measured on the candidate's own clock from the
//! moment it first saw that record; `renewTime` is never compared with the local clock, so
//! clock skew between nodes does not matter. The holder renews every retry period and stops
//! leading once no renewal has succeeded for the renew deadline. The deadline is shorter than
//! the lease duration and counts from the start of the last successful write, which no other
//! replica can have seen earlier, so the holder has stopped before anyone else may take over.
//!
//! Stopping means the `stop` future handed to the leader resolves; reconciles already running
//! are then allowed to finish. Reconciles are level-based and write with server-side apply under
//! one field manager, so such an overlap with the next leader converges instead of fighting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::Rng;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// client-go's and controller-runtime's defaults.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Candidates wait up to this fraction of the retry period longer between attempts, so
/// replicas started together do not keep colliding.
const JITTER: f64 = 0.2;

/// Where the replicas meet and how quickly leadership moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease every replica competes for; created by the first candidate when missing.
    pub lease_name: String,
    pub namespace: String,
    /// This replica's `spec.holderIdentity`, unique among the replicas (the pod name).
    pub identity: String,
    /// How long a claim keeps the others out after its last renewal. Whole seconds: the Lease
    /// stores `leaseDurationSeconds` as an integer.
    pub lease_duration: Duration,
    /// How long the holder goes on leading without a successful renewal. Shorter than
    /// `lease_duration`, so a holder cut off from the API server stops before another replica
    /// may take over.
    pub renew_deadline: Duration,
    /// Time between renewals, and (plus jitter) between attempts to acquire.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// An election with client-go's timing defaults.
    pub fn new(
        lease_name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// Checks the settings; the error names the field and what it must be.
    pub fn validate(&self) -> Result<(), InvalidElection> {
        let invalid = |field, problem: String| Err(InvalidElection { field, problem });
        if self.lease_name.is_empty() {
            return invalid(
                "lease_name",
                "is empty: name the Lease the replicas share".into(),
            );
        }
        if self.namespace.is_empty() {
            return invalid("namespace", "is empty: name the Lease's namespace".into());
        }
        if self.identity.is_empty() {
            return invalid(
                "identity",
                "is empty: give each replica a unique identity, such as its pod name".into(),
            );
        }
        if self.lease_duration < Duration::from_secs(1)
            || self.lease_duration.subsec_nanos() != 0
            || self.lease_duration.as_secs() > i32::MAX as u64
        {
            return invalid(
                "lease_duration",
                format!(
                    "is {:?}: it must be a whole number of seconds, at least 1 s (the Lease stores leaseDurationSeconds as an integer)",
                    self.lease_duration
                ),
            );
        }
        if self.retry_period.is_zero() {
            return invalid("retry_period", "is zero: it must be positive".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return invalid(
                "renew_deadline",
                format!(
                    "is {:?}: it must be shorter than lease_duration ({:?}), so a holder that cannot renew stops leading before another replica may take over",
                    self.renew_deadline, self.lease_duration
                ),
            );
        }
        if self.renew_deadline <= self.retry_period.mul_f64(1.0 + JITTER) {
            return invalid(
                "renew_deadline",
                format!(
                    "is {:?}: it must be longer than 1.2 × retry_period ({:?}), so the holder gets more than one attempt to renew",
                    self.renew_deadline, self.retry_period
                ),
            );
        }
        Ok(())
    }
}

/// A [`LeaderElection`] setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("leader election: {field} {problem}")]
pub struct InvalidElection {
    pub field: &'static str,
    pub problem: String,
}

/// Whether this replica currently leads; clones share the flag (for `/readyz` and metrics).
#[derive(Clone, Debug, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, leading: bool) {
        self.0.store(leading, Ordering::Release);
    }
}

/// Clears the flag however [`run_elected`] ends, cancellation included: a dropped elector
/// renews nothing, so it leads no longer.
struct ClearOnDrop(Leadership);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Campaigns for the Lease; while this replica holds it, runs `lead(stop)`, where `stop`
/// resolves once leadership is lost or `shutdown` fires. After a loss, and once `lead`'s future
/// has finished, campaigns again, calling `lead` anew on the next win.
///
/// On `shutdown` the Lease is renewed until `lead`'s future finishes and then released, so
/// another replica takes over at once instead of after the lease duration. If `lead`'s future
/// finishes without being stopped, the Lease is released too and this returns: the caller
/// decides whether the process goes on.
///
/// API errors never end the election: they are logged and retried every retry period. The only
/// error is a setting that cannot work.
pub async fn run_elected<F, Fut>(
    client: Client,
    election: LeaderElection,
    shutdown: impl Future<Output = ()>,
    leadership: Leadership,
    mut lead: F,
) -> Result<(), InvalidElection>
where
    F: FnMut(BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = ()>,
{
    election.validate()?;
    let _clear = ClearOnDrop(leadership.clone());
    let mut elector = Elector::new(client, election);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Some(mut renewed) = elector.campaign(shutdown.as_mut()).await else {
            // A claim may have landed just as shutdown interrupted it.
            elector.release().await;
            return Ok(());
        };
        leadership.set(true);
        tracing::info!(lease = %elector.key, identity = %elector.cfg.identity, "acquired the lease; leading");

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let stop = async move {
            let _ = stop_rx.await;
        }
        .boxed();
        let mut term = std::pin::pin!(lead(stop));
        let end = tokio::select! {
            biased;
            () = shutdown.as_mut() => End::Shutdown,
            loss = elector.hold(&mut renewed) => End::Lost(loss),
            () = term.as_mut() => End::Returned,
        };
        match end {
            End::Lost(loss) => {
                // Cleared before the controllers are told, so nothing reports this replica as
                // leader once it has stopped renewing.
                leadership.set(false);
                tracing::warn!(lease = %elector.key, identity = %elector.cfg.identity, reason = %loss, "lost the lease; stopping the controllers");
                let _ = stop_tx.send(());
                term.await;
                tracing::info!(lease = %elector.key, identity = %elector.cfg.identity, "controllers stopped; campaigning again");
            }
            End::Shutdown => {
                tracing::info!(lease = %elector.key, identity = %elector.cfg.identity, "shutting down; stopping the controllers before releasing the lease");
                let _ = stop_tx.send(());
                // Reconciles still running are covered by renewals, so no other replica starts
                // before they have finished.
                let held = tokio::select! {
                    biased;
                    () = term.as_mut() => true,
                    loss = elector.hold(&mut renewed) => {
                        leadership.set(false);
                        tracing::warn!(lease = %elector.key, identity = %elector.cfg.identity, reason = %loss, "lost the lease while stopping");
                        term.await;
                        false
                    }
                };
                leadership.set(false);
                if held {
                    elector.release().await;
                }
                return Ok(());
            }
            End::Returned => {
                leadership.set(false);
                tracing::warn!(lease = %elector.key, identity = %elector.cfg.identity, "the controllers stopped without being asked to; releasing the lease");
                elector.release().await;
                return Ok(());
            }
        }
    }
}

enum End {
    Shutdown,
    Lost(Loss),
    Returned,
}

/// Why a holder stopped leading.
#[derive(Debug)]
enum Loss {
    /// No renewal succeeded within the renew deadline.
    Deadline,
    /// Another identity holds a claim this replica has not seen lapse.
    TakenBy(String),
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::Deadline => f.write_str("no renewal succeeded within the renew deadline"),
            Loss::TakenBy(holder) => write!(f, "the lease is held by {holder}"),
        }
    }
}

/// The outcome of one read-and-claim round trip.
enum Attempt {
    /// This replica holds the Lease, written by a request that started at that instant.
    Held(Instant),
    /// Another identity's claim is still valid.
    HeldBy(String),
    /// Someone else wrote the Lease between this replica's read and write.
    Conflict,
}

struct Elector {
    api: Api<Lease>,
    cfg: LeaderElection,
    /// `namespace/name`, for logs.
    key: String,
    /// The Lease's spec as last seen, and when this replica first saw it with that content:
    /// the start of the lapse countdown.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    fn new(client: Client, cfg: LeaderElection) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            key: format!("{}/{}", cfg.namespace, cfg.lease_name),
            cfg,
            observed: None,
        }
    }

    fn observe(&mut self, spec: LeaseSpec, at: Instant) {
        if !matches!(&self.observed, Some((seen, _)) if *seen == spec) {
            self.observed = Some((spec, at));
        }
    }

    /// Whether the claim last observed has gone unrenewed for its lease duration.
    fn lapsed(&self, now: Instant) -> bool {
        let Some((spec, since)) = &self.observed else {
            return true;
        };
        // A record without a duration is judged by this replica's own setting.
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.cfg.lease_duration, Duration::from_secs);
        now >= *since + duration
    }

    fn lease_duration_seconds(&self) -> i32 {
        // `validate` bounds it to the i32 range.
        i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// One round: reads the Lease and, if it is free, lapsed or this replica's, writes this
    /// replica's claim with the `resourceVersion` it read.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let started = Instant::now();
        let now = MicroTime(Timestamp::now());
        let duration = Some(self.lease_duration_seconds());
        let identity = Some(self.cfg.identity.clone());
        let Some(mut lease) = self.api.get_opt(&self.cfg.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.lease_name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: identity,
                    lease_duration_seconds: duration,
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default(), started);
                    Ok(Attempt::Held(started))
                }
                // AlreadyExists: another candidate created it first.
                Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.take().unwrap_or_default();
        self.observe(spec.clone(), started);
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let ours = holder == Some(self.cfg.identity.as_str());
        if let Some(other) = holder
            && !ours
            && !self.lapsed(started)
        {
            return Ok(Attempt::HeldBy(other.to_string()));
        }
        lease.spec = Some(if ours {
            LeaseSpec {
                renew_time: Some(now),
                lease_duration_seconds: duration,
                ..spec
            }
        } else {
            LeaseSpec {
                holder_identity: identity,
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_duration_seconds: duration,
                lease_transitions: Some(spec.lease_transitions.unwrap_or(0).saturating_add(1)),
                ..spec
            }
        });
        match self
            .api
            .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(written.spec.unwrap_or_default(), started);
                Ok(Attempt::Held(started))
            }
            Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Tries to acquire every retry period (plus jitter) until it does; `None` when `shutdown`
    /// came first. Returns when the winning write started.
    async fn campaign<S>(&mut self, mut shutdown: Pin<&mut S>) -> Option<Instant>
    where
        S: Future<Output = ()>,
    {
        let mut leader: Option<String> = None;
        loop {
            let attempt = tokio::select! {
                biased;
                () = shutdown.as_mut() => return None,
                attempt = self.try_acquire_or_renew() => attempt,
            };
            match attempt {
                Ok(Attempt::Held(at)) => return Some(at),
                Ok(Attempt::HeldBy(holder)) => {
                    if leader.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.key, identity = %self.cfg.identity, leader = %holder, "another replica leads; standing by");
                        leader = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => {
                    tracing::debug!(lease = %self.key, identity = %self.cfg.identity, "another replica wrote the lease first");
                }
                Err(e) => {
                    tracing::warn!(lease = %self.key, identity = %self.cfg.identity, error = %e, "could not read or claim the lease; retrying");
                }
            }
            let pause = self
                .cfg
                .retry_period
                .mul_f64(1.0 + rand::rng().random_range(0.0..JITTER));
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Renews every retry period while this replica holds the Lease; returns once it does not.
    /// `renewed` is when the last successful renewal started; dropping this future mid-request
    /// leaves it there, which only brings the deadline closer.
    async fn hold(&mut self, renewed: &mut Instant) -> Loss {
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            loop {
                let deadline = *renewed + self.cfg.renew_deadline;
                match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                    Err(_) => return Loss::Deadline,
                    Ok(Ok(Attempt::Held(at))) => {
                        *renewed = at;
                        break;
                    }
                    Ok(Ok(Attempt::HeldBy(holder))) => return Loss::TakenBy(holder),
                    Ok(Ok(Attempt::Conflict)) => {
                        tracing::debug!(lease = %self.key, identity = %self.cfg.identity, "the lease changed while renewing; reading it again");
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(lease = %self.key, identity = %self.cfg.identity, error = %e, "could not renew the lease; retrying");
                    }
                }
                let next = Instant::now() + self.cfg.retry_period;
                if next >= deadline {
                    tokio::time::sleep_until(deadline).await;
                    return Loss::Deadline;
                }
                tokio::time::sleep_until(next).await;
            }
        }
    }

    /// Gives the Lease up if this replica still holds it, so the next candidate need not wait
    /// for it to lapse. Bounded by the renew deadline: an unreachable API server must not hold
    /// up shutdown, and the claim lapses by itself anyway.
    async fn release(&mut self) {
        match tokio::time::timeout(self.cfg.renew_deadline, self.try_release()).await {
            Ok(Ok(true)) => {
                tracing::info!(lease = %self.key, identity = %self.cfg.identity, "released the lease");
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.key, identity = %self.cfg.identity, error = %e, "could not release the lease; it lapses after its duration");
            }
            Err(_) => {
                tracing::warn!(lease = %self.key, identity = %self.cfg.identity, "releasing the lease timed out; it lapses after its duration");
            }
        }
    }

    async fn try_release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.lease_name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(false);
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            acquire_time: None,
            renew_time: Some(MicroTime(Timestamp::now())),
            lease_duration_seconds: Some(1),
            ..spec
        });
        match self
            .api
            .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Written by someone else since the read: no longer this replica's to release.
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn election() -> LeaderElection {
        LeaderElection::new("db-operator", "operators", "pod-a")
    }

    #[test]
    fn the_defaults_are_client_gos_and_valid() {
        let e = election();
        assert_eq!(
            (e.lease_duration, e.renew_deadline, e.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        assert_eq!(e.validate(), Ok(()));
    }

    #[test]
    fn settings_that_cannot_work_name_their_field() {
        let field = |e: LeaderElection| e.validate().unwrap_err().field;
        assert_eq!(
            field(LeaderElection {
                identity: String::new(),
                ..election()
            }),
            "identity"
        );
        assert_eq!(
            field(LeaderElection {
                renew_deadline: Duration::from_secs(15),
                ..election()
            }),
            "renew_deadline"
        );
        assert_eq!(
            field(LeaderElection {
                retry_period: Duration::from_secs(9),
                ..election()
            }),
            "renew_deadline"
        );
        assert_eq!(
            field(LeaderElection {
                lease_duration: Duration::from_millis(2500),
                ..election()
            }),
            "lease_duration"
        );
        let message = LeaderElection {
            renew_deadline: Duration::from_secs(20),
            ..election()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("shorter than lease_duration (15s)"),
            "{message}"
        );
    }
}

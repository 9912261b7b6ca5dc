//! How a replica learns of changes other replicas make: `LISTEN pai_changes` on a connection
//! of its own, and a read of the revision every [`RESYNC_INTERVAL`] for notifications lost
//! while that connection was down.

use std::sync::{Arc, Weak};
use std::time::Duration;

use pai_core::StoreError;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{watch, Notify};

use super::rows::db_error;
use super::{CHANNEL, RESYNC_INTERVAL};

/// The revision the database holds now.
pub(super) async fn read_revision(pool: &PgPool) -> Result<u64, StoreError> {
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM revision")
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
    u64::try_from(revision).map_err(|_| StoreError::Corrupt(format!("the revision is {revision}")))
}

/// Move `sender` forward to `revision`; never back, and no wake-up when it is not newer.
pub(super) fn advance(sender: &watch::Sender<u64>, revision: u64) {
    sender.send_if_modified(|current| {
        let newer = revision > *current;
        if newer {
            *current = revision;
        }
        newer
    });
}

/// Start the listener and the resync loop; both end when `stop`'s sender is dropped.
pub(super) fn spawn(pool: PgPool, revision: Weak<watch::Sender<u64>>, stop: watch::Receiver<()>) {
    let wake = Arc::new(Notify::new());
    tokio::spawn(listen(pool.clone(), Arc::clone(&wake), stop.clone()));
    tokio::spawn(resync(pool, revision, wake, stop));
}

/// Wake the resync loop on every notification, and after a reconnection (notifications sent
/// while disconnected are lost).
async fn listen(pool: PgPool, wake: Arc<Notify>, mut stop: watch::Receiver<()>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            wake.notify_one();
            loop {
                // `None`: the connection was lost; the next call reconnects and listens again.
                listener.try_recv().await?;
                wake.notify_one();
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            result = listening => {
                let result: Result<(), sqlx::Error> = result;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "PostgreSQL change listener lost its connection; retrying");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RESYNC_INTERVAL);
    }
}

/// Read the revision on every wake-up and every `RESYNC_INTERVAL`, and move the watch to it.
async fn resync(
    pool: PgPool,
    revision: Weak<watch::Sender<u64>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<()>,
) {
    let mut reachable = true;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(RESYNC_INTERVAL) => {}
        }
        let read = read_revision(&pool).await;
        let Some(sender) = revision.upgrade() else {
            return;
        };
        match read {
            Ok(now) => {
                if !reachable {
                    tracing::info!("PostgreSQL store reachable again");
                    reachable = true;
                }
                advance(&sender, now);
            }
            Err(e) => {
                if reachable {
                    tracing::warn!(error = %e, "PostgreSQL store unreachable; serving from the last snapshot");
                    reachable = false;
                }
            }
        }
    }
}

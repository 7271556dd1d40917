//! PostgreSQL connections for point reads, handed out and taken back without sqlx's pool round trips.
//!
//! sqlx's pool tests every connection it gets back with a ping (a round trip to PostgreSQL) from a task it
//! spawns, so a one-row lookup on the hot path (introspection) costs two round trips. Here a connection goes back to the idle list at once, and whether it is fit for reuse
//! is judged by its query's own outcome instead: a connection whose query failed for any reason other than
//! the database's answer, or whose query was abandoned half-way (a [`Lease`] dropped before
//! [`Lease::settle`], e.g. a cancelled request), is closed, never reused. A transport failure also drops
//! every idle connection, which most likely went down with it.
//!
//! A connection also forgets its prepared statements every [`REPLAN_AFTER`]. PostgreSQL
//! keeps the plan it made for a prepared statement until the table is analysed or altered, even as the
//! table grows: a plan made while a table was small (a sequential scan) would otherwise stay in use
//! for minutes after a burst of writes to a fresh database.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, Postgres};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Up to `max` connections opened on demand with `options`; or the connections of a sqlx pool (see
/// [`Connections::shared`]).
#[derive(Debug)]
pub(crate) struct Connections {
    options: PgConnectOptions,
    idle: Mutex<Vec<Own>>,
    permits: Semaphore,
    timeout: Duration,
    shared: Option<PgPool>,
    /// Run on each new connection (e.g. a `SET`).
    setup: Option<&'static str>,
    replan_after: Duration,
}

/// How long a connection of its own keeps its prepared statements (see the module docs). Preparing them
/// again costs one round trip per period and connection, and a plan per statement.
const REPLAN_AFTER: Duration = Duration::from_secs(5);

/// A connection opened here, and since when its prepared statements (and their plans) are kept.
#[derive(Debug)]
struct Own {
    conn: PgConnection,
    prepared_since: Instant,
}

/// One connection, checked out; give it back with [`Lease::settle`].
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    from: &'a Connections,
    conn: Option<Held>,
    _permit: SemaphorePermit<'a>,
}

#[derive(Debug)]
enum Held {
    Own(Own),
    Pooled(PoolConnection<Postgres>),
}

impl Connections {
    /// `timeout` bounds both the wait for a free connection and opening a new one: while the database is
    /// away, requests fail fast (503) instead of queueing.
    pub(crate) fn new(options: PgConnectOptions, max: u32, timeout: Duration) -> Self {
        Connections {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max.max(1) as usize),
            timeout,
            shared: None,
            setup: None,
            replan_after: REPLAN_AFTER,
        }
    }

    /// Keep prepared statements for `period` instead of [`REPLAN_AFTER`].
    #[cfg(test)]
    fn replan_after(self, period: Duration) -> Self {
        Connections { replan_after: period, ..self }
    }

    /// Run `sql` on every connection this opens, before its first query.
    pub(crate) fn setup(self, sql: &'static str) -> Self {
        Connections { setup: Some(sql), ..self }
    }

    /// Lease the connections of `pool` instead (its own checks apply), as many at once as it holds.
    pub(crate) fn shared(pool: PgPool, options: PgConnectOptions) -> Self {
        let max = pool.options().get_max_connections();
        Connections { shared: Some(pool), ..Connections::new(options, max, Duration::from_secs(5)) }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Own>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Check a connection out, opening one if none is idle.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, sqlx::Error> {
        let permit = tokio::time::timeout(self.timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        if let Some(pool) = &self.shared {
            return Ok(Lease { from: self, conn: Some(Held::Pooled(pool.acquire().await?)), _permit: permit });
        }
        let idle = self.idle().pop();
        let conn = match idle {
            Some(own) if own.prepared_since.elapsed() < self.replan_after => own,
            Some(mut own) => match tokio::time::timeout(self.timeout, own.conn.clear_cached_statements()).await {
                Ok(Ok(())) => Own { conn: own.conn, prepared_since: Instant::now() },
                // In an unknown state now; a new connection starts without statements too.
                _ => self.connect().await?,
            },
            None => self.connect().await?,
        };
        Ok(Lease { from: self, conn: Some(Held::Own(conn)), _permit: permit })
    }

    async fn connect(&self) -> Result<Own, sqlx::Error> {
        let open = async {
            let mut conn = self.options.connect().await?;
            if let Some(sql) = self.setup {
                sqlx::query(sql).persistent(false).execute(&mut conn).await?;
            }
            Ok(Own { conn, prepared_since: Instant::now() })
        };
        tokio::time::timeout(self.timeout, open).await.map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    /// Close every idle connection, and refuse new leases.
    pub(crate) async fn close(&self) {
        self.permits.close();
        if let Some(pool) = &self.shared {
            pool.close().await;
        }
        let idle = std::mem::take(&mut *self.idle());
        for own in idle {
            let _ = own.conn.close().await;
        }
    }
}

impl Lease<'_> {
    /// The connection, to run a query on.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        match self.conn.as_mut().expect("a lease holds its connection until settled") {
            Held::Own(own) => &mut own.conn,
            Held::Pooled(conn) => conn,
        }
    }

    /// Give the connection back (or close it, see the module docs) and pass the query's result through.
    pub(crate) fn settle<T, E: Outcome>(mut self, result: Result<T, E>) -> Result<T, E> {
        let Held::Own(own) = self.conn.take().expect("a lease is settled once") else {
            // A pooled connection goes back to its pool on drop.
            return result;
        };
        match result.as_ref().map_or_else(Outcome::fate, |_| Fate::Keep) {
            Fate::Keep => self.from.idle().push(own),
            Fate::Close => {}
            Fate::CloseAll => self.from.idle().clear(),
        }
        result
    }
}

/// What a query's outcome says about its connection.
pub(crate) enum Fate {
    /// Fit for the next query.
    Keep,
    /// Unknown state: close it.
    Close,
    /// The transport failed: close it and the idle ones, which most likely went down with it.
    CloseAll,
}

/// An error a query on a leased connection can end with.
pub(crate) trait Outcome {
    fn fate(&self) -> Fate;
}

impl Outcome for sqlx::Error {
    fn fate(&self) -> Fate {
        match self {
            // The database answered: the connection works.
            sqlx::Error::Database(_) | sqlx::Error::RowNotFound | sqlx::Error::ColumnDecode { .. } => Fate::Keep,
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => Fate::CloseAll,
            _ => Fate::Close,
        }
    }
}

impl Outcome for crate::StoreError {
    fn fate(&self) -> Fate {
        match self {
            // A constraint or a stored row said no; the connection is fine.
            crate::StoreError::Conflict(_) | crate::StoreError::Corrupt(_) => Fate::Keep,
            crate::StoreError::Unavailable(_) => Fate::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;

    use super::*;

    /// Connections to the test server (see `fixtures::postgres_url`).
    fn connections() -> Connections {
        let url = crate::fixtures::postgres_url();
        let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
        Connections::new(options, 2, Duration::from_secs(5))
    }

    async fn select_one(lease: &mut Lease<'_>) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("SELECT 1").fetch_one(lease.conn()).await
    }

    #[tokio::test]
    async fn settled_connections_are_reused_and_abandoned_ones_closed() {
        let pool = connections();
        let mut lease = pool.lease().await.unwrap();
        let one = select_one(&mut lease).await;
        assert_eq!(lease.settle(one).unwrap(), 1);
        assert_eq!(pool.idle().len(), 1, "a connection whose query succeeded is kept");

        let mut lease = pool.lease().await.unwrap();
        let refused = sqlx::query("SELECT * FROM no_such_table").execute(lease.conn()).await;
        assert!(matches!(lease.settle(refused), Err(sqlx::Error::Database(_))));
        assert_eq!(pool.idle().len(), 1, "the database's own answer says nothing against the connection");

        let mut lease = pool.lease().await.unwrap();
        let _ = select_one(&mut lease).await;
        drop(lease);
        assert_eq!(pool.idle().len(), 0, "an unsettled lease (a cancelled query) closes its connection");
        pool.close().await;
    }

    #[tokio::test]
    async fn leases_are_bounded_and_time_out() {
        let url = crate::fixtures::postgres_url();
        let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
        let pool = Connections::new(options, 2, Duration::from_millis(200));
        let (a, b) = (pool.lease().await.unwrap(), pool.lease().await.unwrap());
        assert!(matches!(pool.lease().await, Err(sqlx::Error::PoolTimedOut)), "two at most");
        drop(a);
        let c = pool.lease().await.expect("a returned permit is reusable");
        drop((b, c));
        pool.close().await;
        assert!(matches!(pool.lease().await, Err(sqlx::Error::PoolClosed)));
    }

    async fn cached_after_a_lookup(pool: &Connections) -> usize {
        let mut lease = pool.lease().await.unwrap();
        let before = lease.conn().cached_statements_size();
        let one = sqlx::query_scalar::<_, i32>("SELECT $1").bind(1).fetch_one(lease.conn()).await;
        assert_eq!(lease.settle(one).unwrap(), 1);
        before
    }

    #[tokio::test]
    async fn prepared_statements_are_forgotten_once_their_period_is_over() {
        let kept = connections();
        cached_after_a_lookup(&kept).await;
        assert_eq!(cached_after_a_lookup(&kept).await, 1, "within the period, the statement stays prepared");
        kept.close().await;

        let forgetful = connections().replan_after(Duration::ZERO);
        cached_after_a_lookup(&forgetful).await;
        assert_eq!(cached_after_a_lookup(&forgetful).await, 0, "past the period, it is prepared again");
        assert_eq!(forgetful.idle().len(), 1, "on the same connection");
        forgetful.close().await;
    }

    #[tokio::test]
    async fn the_setup_runs_on_each_new_connection() {
        let pool = connections().setup("SET application_name = 'authflow-lease-test'");
        let (mut a, mut b) = (pool.lease().await.unwrap(), pool.lease().await.unwrap());
        for lease in [&mut a, &mut b] {
            let name = sqlx::query_scalar::<_, String>("SHOW application_name").fetch_one(lease.conn()).await;
            assert_eq!(name.unwrap(), "authflow-lease-test");
        }
        drop((a, b));
        pool.close().await;
    }
}

//! The connection pool's gauges, sampled at each scrape: connections by state and the pool's largest size.

use platform::observability::metrics::Metrics;
use sea_orm::{DatabaseConnection, DatabaseConnectionType};

/// Gauge: pooled database connections by `state` (`idle`, `in_use`).
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// Gauge: the pool's largest size (`db_max_connections`).
pub const DB_POOL_MAX: &str = "db_pool_max_connections";

/// Reports `database`'s pool, of at most `max_connections`, in `metrics` from now on.
pub fn observe_pool(metrics: &Metrics, database: DatabaseConnection, max_connections: u32) {
    metrics.gauge(DB_POOL_MAX, "Largest number of pooled database connections.", &[]).set(f64::from(max_connections));
    let help = "Pooled database connections by state.";
    let idle = metrics.gauge(DB_POOL_CONNECTIONS, help, &[("state", "idle")]);
    let in_use = metrics.gauge(DB_POOL_CONNECTIONS, help, &[("state", "in_use")]);
    metrics.on_scrape(move || {
        if let Some((size, idle_now)) = pool_usage(&database) {
            idle.set(idle_now as f64);
            in_use.set(f64::from(size).max(idle_now as f64) - idle_now as f64);
        }
    });
}

/// Pool size and idle connections of `database`'s sqlx pool.
fn pool_usage(database: &DatabaseConnection) -> Option<(u32, usize)> {
    match &database.inner {
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            let pool = database.get_sqlite_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = database.get_postgres_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        DatabaseConnectionType::SqlxMySqlPoolConnection(_) => {
            let pool = database.get_mysql_connection_pool();
            Some((pool.size(), pool.num_idle()))
        }
        _ => None,
    }
}

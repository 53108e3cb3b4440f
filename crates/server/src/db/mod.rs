//! The database: which engine the URL names (SQLite, PostgreSQL, MySQL/MariaDB), connecting with the right
//! settings (SQLite WAL, busy timeout and foreign keys; PostgreSQL `search_path`), the pool, the schema check of
//! production mode, the handle every store shares ([`handle::DbHandle`]), and the SeaORM implementation of the
//! domain's stores.

pub mod commands;
pub mod entity;
pub mod handle;
pub mod health;
pub mod metrics;
pub mod owners;
pub mod reads;
pub mod resources;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

use crate::config::DatabaseSettings;

/// The default database file inside the instance path.
pub const DEFAULT_SQLITE_FILE: &str = "rust-api-axum.sqlite";

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names an engine we do not support or is not a URL; a configuration error.
    #[error("{0}")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The URL without its password.
        url: String,
        /// What the driver said.
        source: DbErr,
    },
    /// Production mode and the schema is behind the binary.
    #[error(
        "the database schema is behind this version ({pending} pending migration(s): {names}); \
         run `rust-api-axum db upgrade` first, or start without --no-migrate"
    )]
    SchemaBehind {
        /// How many migrations are pending.
        pending: usize,
        /// Their names.
        names: String,
    },
    /// Applying or inspecting migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] DbErr),
}

impl DbError {
    /// 2 for configuration mistakes, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::UnsupportedUrl(_) => 2,
            _ => 1,
        }
    }
}

/// The database URL the configuration asks for: `db_url`, or the SQLite file in the instance path.
pub fn database_url(config: &DatabaseSettings) -> Result<String, DbError> {
    let url = match &config.db_url {
        Some(url) => url.expose_secret().to_owned(),
        None => sqlite_url(&config.instance_path.join(DEFAULT_SQLITE_FILE)),
    };
    let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase()).unwrap_or_default();
    match scheme.as_str() {
        "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb" => Ok(url),
        "mssql" | "sqlserver" => Err(DbError::UnsupportedUrl(
            "MS SQL Server is not supported; use sqlite://, postgres:// or mysql:// (MariaDB too)".to_owned(),
        )),
        _ => Err(DbError::UnsupportedUrl(format!(
            "unsupported database URL '{}'; use sqlite://, postgres:// or mysql:// (MariaDB too)",
            redact(&url)
        ))),
    }
}

/// The SQLite file `config` names, when it does not exist yet: the read-only `db` commands report on an empty
/// schema then, instead of creating a database (and its directory) just to look at it.
pub fn missing_sqlite_file(config: &DatabaseSettings) -> Option<PathBuf> {
    let url = database_url(config).ok()?;
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest).split('?').next()?;
    if path.is_empty() || is_in_memory(&url) {
        return None;
    }
    let path = PathBuf::from(path);
    (!path.exists()).then_some(path)
}

/// An empty in-memory SQLite database: what a read-only command reports on when there is no database file yet.
pub async fn connect_empty() -> Result<DatabaseConnection, DbError> {
    let url = "sqlite::memory:";
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options).await.map_err(|source| DbError::Connect { url: url.to_owned(), source })
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Connects a pool to the configured database.
/// Longest a request waits on the database, for a connection or for an answer, before it gets a 503: a database
/// that is down or silent (a dropped network path) must not hold requests for the whole request timeout.
pub const DB_WAIT: Duration = Duration::from_secs(5);

/// Connects to the configured database.
pub async fn connect(config: &DatabaseSettings) -> Result<DatabaseConnection, DbError> {
    let url = database_url(config)?;
    // sqlx spells MariaDB as mysql.
    let url = match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url,
    };
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(config.db_max_connections.max(1))
        .min_connections(0)
        .connect_timeout(DB_WAIT)
        .acquire_timeout(DB_WAIT)
        .idle_timeout(Duration::from_secs(300))
        // sqlx pings a connection on every checkout by default: a second round trip per query to PostgreSQL or
        // MariaDB, and a second hand-off to SQLite's worker thread. Only connections idle long enough for a
        // server, proxy or firewall to have dropped them are checked; a query on a connection that broke anyway
        // fails once with a 503 and the pool replaces it.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|options| {
            options
                .create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    if is_in_memory(&url) {
        // Every connection to an in-memory SQLite database is its own database.
        options.max_connections(1);
    }
    if let Some(schema) = &config.db_schema {
        options.set_schema_search_path(schema.clone());
    }
    Database::connect(options).await.map_err(|source| DbError::Connect { url: redact(&url), source })
}

/// Whether a SQLite URL names an in-memory database, which each connection sees as its own.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Brings the schema up to date (`auto_migrate`), or checks without changing anything that it is (production).
pub async fn prepare_schema(db: &DatabaseConnection, auto_migrate: bool) -> Result<(), DbError> {
    if auto_migrate {
        let pending = Migrator::get_pending_migrations(db).await.map_err(DbError::Migration)?;
        if !pending.is_empty() {
            tracing::info!("Applying {} database migration(s)", pending.len());
        }
        return Migrator::up(db, None).await.map_err(DbError::Migration);
    }
    let pending = Migrator::get_pending_migrations_read_only(db).await.map_err(DbError::Migration)?;
    if pending.is_empty() {
        return Ok(());
    }
    Err(DbError::SchemaBehind {
        pending: pending.len(),
        names: pending.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
    })
}

/// A cheap query with a short timeout, for `/healthz`.
pub async fn ping(db: &DatabaseConnection) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(2), db.execute_unprepared("SELECT 1")).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_sqlite_in_the_instance_path() {
        let config = DatabaseSettings { instance_path: "var/x".into(), ..DatabaseSettings::default() };
        assert_eq!(database_url(&config).expect("url"), "sqlite://var/x/rust-api-axum.sqlite");
    }

    #[test]
    fn mssql_and_unknown_engines_are_refused_clearly() {
        for url in ["mssql://sa:pw@host/db", "sqlserver://host", "oracle://u:secret@h/db", "nonsense"] {
            let config = DatabaseSettings { db_url: Some(url.into()), ..DatabaseSettings::default() };
            let error = database_url(&config).expect_err("refused").to_string();
            assert!(error.contains("sqlite://"), "{error}");
            assert!(!error.contains("secret"), "password leaked: {error}");
        }
        let config = DatabaseSettings { db_url: Some("mssql://x".into()), ..DatabaseSettings::default() };
        assert!(database_url(&config).expect_err("refused").to_string().contains("MS SQL Server is not supported"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://app:hunter2@db:5432/app"), "postgres://app:***@db:5432/app");
        assert_eq!(redact("sqlite://var/x.sqlite"), "sqlite://var/x.sqlite");
    }

    #[tokio::test]
    async fn migrations_go_up_down_and_up_again_on_sqlite() {
        let config = DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..DatabaseSettings::default() };
        let db = connect(&config).await.expect("connects");
        prepare_schema(&db, false).await.expect_err("production mode refuses a blank schema");
        prepare_schema(&db, true).await.expect("migrates");
        prepare_schema(&db, false).await.expect("up to date");
        Migrator::down(&db, None).await.expect("all the way down");
        let pending = Migrator::get_pending_migrations(&db).await.expect("status").len();
        assert_eq!(pending, Migrator::migrations().len(), "every migration, an added entity's too, went down");
        prepare_schema(&db, true).await.expect("and up again");
    }
}

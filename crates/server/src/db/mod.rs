//! The database: which engine the URL names (SQLite, PostgreSQL, MySQL/MariaDB), how a URL and a driver's error
//! are shown without secrets ([`redact`]), connecting with the right settings (SQLite WAL, busy timeout and foreign
//! keys, its files private; PostgreSQL `search_path`), the pool, the schema check of production mode, the handle
//! every store shares ([`handle::DbHandle`]), and the SeaORM implementation of the domain's stores.

pub mod commands;
pub mod entity;
pub mod handle;
pub mod health;
pub mod idempotency;
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
    #[error("cannot connect to the database at {url}: {reason}")]
    Connect {
        /// The URL as [`redact`] shows it.
        url: String,
        /// What the driver said, without the URL or any secret of it ([`without_secrets`]).
        reason: String,
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
        // sqlx reads a SQLite URL as a path, not as a URL; the other drivers parse it as a URL, and the driver's
        // own error would quote it whole, password included.
        "sqlite" => Ok(url),
        "postgres" | "postgresql" | "mysql" | "mariadb" => match url::Url::parse(&url) {
            Ok(_) => Ok(url),
            Err(error) => Err(DbError::UnsupportedUrl(format!(
                "db_url does not parse as a URL ({error}); percent-encode the characters : / ? # [ ] @ % in its \
                 user name and password"
            ))),
        },
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
    let path = sqlite_file(&database_url(config).ok()?)?;
    (!path.exists()).then_some(path)
}

/// The file a SQLite URL names; `None` for another engine or an in-memory database.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = strip_prefix_ignore_case(url, "sqlite:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest).split('?').next()?;
    (!path.is_empty() && !is_in_memory(url)).then(|| PathBuf::from(path))
}

/// Creates `path` and its missing parents readable by this user only (0700): the instance path holds the SQLite
/// database. A directory that exists keeps its mode: a mounted volume's owner (or `fsGroup`) decides it.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Creates the SQLite file `url` names, readable and writable by this user only (0600), before the driver does:
/// SQLite would create it with 0644 less the umask, and it gives the `-wal` and `-shm` files it makes later the
/// mode of the database file, so this one mode covers all three whatever the umask. An existing file keeps its
/// mode; a URL that opens read-only or without creating (`mode=ro`, `mode=rw`) creates nothing.
fn create_private_sqlite_file(url: &str) -> std::io::Result<()> {
    let Some(path) = sqlite_file(url) else { return Ok(()) };
    let query = url.split_once('?').map_or("", |(_, query)| query);
    if url::form_urlencoded::parse(query.as_bytes()).any(|(key, value)| key == "mode" && value != "rwc") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error),
        _ => Ok(()),
    }
}

/// An empty in-memory SQLite database: what a read-only command reports on when there is no database file yet.
pub async fn connect_empty() -> Result<DatabaseConnection, DbError> {
    let url = "sqlite::memory:";
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options).await.map_err(|error| connect_error(url, &error))
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// What a URL that does not parse is shown as: any part of it could be the password.
pub const UNPARSEABLE_URL: &str = "<unparseable database URL>";

/// The query keys a shown URL keeps: they tune the connection and never carry a credential. Every other key
/// (`password`, `sslpassword`, `options`, whatever a driver adds next) is left out.
pub const SHOWN_QUERY_KEYS: &[&str] = &[
    // PostgreSQL (sqlx, libpq)
    "sslmode",
    "application_name",
    "connect_timeout",
    "statement-cache-capacity",
    // MySQL/MariaDB (sqlx)
    "ssl-mode",
    "charset",
    "collation",
    "timezone",
    // SQLite (sqlx)
    "mode",
    "cache",
    "immutable",
];

/// A database URL for logs and errors: scheme, host, port and database (for SQLite, the file) and the query keys
/// of [`SHOWN_QUERY_KEYS`]; never the user, the password, another query key or a fragment, and
/// [`UNPARSEABLE_URL`] for a URL that does not parse (an unencoded `#` in a password, a bad port), since then
/// nobody can tell which part is the password.
pub fn redact(url: &str) -> String {
    let (path, query) = if let Some(rest) = strip_prefix_ignore_case(url, "sqlite:") {
        // sqlx reads a SQLite URL as a path, not as a URL: shown as it is, up to its query.
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        (format!("sqlite:{path}"), query.to_owned())
    } else {
        let Ok(parsed) = url::Url::parse(url) else { return UNPARSEABLE_URL.to_owned() };
        let mut shown = format!("{}:", parsed.scheme());
        if let Some(host) = parsed.host_str() {
            shown.push_str("//");
            shown.push_str(host);
            if let Some(port) = parsed.port() {
                shown.push(':');
                shown.push_str(&port.to_string());
            }
        }
        shown.push_str(parsed.path());
        (shown, parsed.query().unwrap_or_default().to_owned())
    };
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| SHOWN_QUERY_KEYS.contains(&key.as_ref()))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    if kept.is_empty() {
        return path;
    }
    format!("{path}?{}", url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// `text` (a driver's words) with every occurrence of `url`, of its password and of the values of its query keys
/// that are not [`SHOWN_QUERY_KEYS`] replaced by `***`: drivers quote the connection string they could not use
/// ("The connection string '...' cannot be parsed"), and a URL that does not parse has no reliable parts, so the
/// raw text is searched, not a parsed URL.
pub(crate) fn without_secrets(text: &str, url: &str) -> String {
    let mut secrets: Vec<String> = vec![url.to_owned()];
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    // The user information ends at the last `@` before the query: a password may hold `#`, `/` or `@` unencoded.
    if let Some((userinfo, _)) = before_query.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        secrets.push(password.to_owned());
        secrets.push(percent_decoded(password));
    }
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let credential = ["pass", "secret", "key", "token"].iter().any(|word| key.to_ascii_lowercase().contains(word));
        // Any other value a driver might repeat, but not a short one (`1`, `on`), which would blank out words.
        if !SHOWN_QUERY_KEYS.contains(&key.as_ref()) && (credential || value.len() >= 4) {
            secrets.push(value.into_owned());
        }
    }
    secrets.retain(|secret| !secret.is_empty());
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "***"))
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, value)| value.into_owned())
}

/// A failed connection to `url`, in our words where the driver's would quote the URL: its configuration errors
/// (a URL or option it cannot use) name what it could not parse, and their text is not needed to fix it.
fn connect_error(url: &str, error: &DbErr) -> DbError {
    let reason = match error {
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error))
            if matches!(**error, sea_orm::sqlx::Error::Configuration(_)) =>
        {
            "the driver does not accept the URL's settings (check its port, its query keys and that reserved \
             characters in the user name and password are percent-encoded)"
                .to_owned()
        }
        error => without_secrets(&error.to_string(), url),
    };
    DbError::Connect { url: redact(url), reason }
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
    create_private_sqlite_file(&url).map_err(|error| DbError::Connect {
        url: redact(&url),
        reason: format!("cannot create the database file: {error}"),
    })?;
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
        // A plain identifier (`DbSchema`): SeaORM writes it into `SET search_path` as it is.
        options.set_schema_search_path(schema.to_string());
    }
    Database::connect(options).await.map_err(|error| connect_error(&url, &error))
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
    fn urls_are_shown_as_scheme_host_port_and_database_with_harmless_query_keys_only() {
        assert_eq!(redact("postgres://app:hunter2@db:5432/app"), "postgres://db:5432/app");
        assert_eq!(
            redact("postgres://app@h/db?password=hunter2&sslmode=require&application_name=api"),
            "postgres://h/db?sslmode=require&application_name=api"
        );
        assert_eq!(
            redact("mysql://root:hunter2@127.0.0.1:3306/app?ssl-mode=DISABLED"),
            "mysql://127.0.0.1:3306/app?ssl-mode=DISABLED"
        );
        assert_eq!(redact("postgres://u:#hunter2@h/db"), "postgres://u");
        assert_eq!(redact("sqlite://var/x.sqlite"), "sqlite://var/x.sqlite");
        assert_eq!(redact("sqlite:///abs/x.sqlite?mode=rwc"), "sqlite:///abs/x.sqlite?mode=rwc");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn urls_that_do_not_parse_are_not_shown_at_all() {
        for url in ["postgres://u:hunter2@h:99999/db", "postgres://u:pa#hunter2@h/db", "not a url hunter2"] {
            assert_eq!(redact(url), "<unparseable database URL>", "{url}");
        }
    }

    #[test]
    fn driver_text_is_cleaned_of_the_url_and_its_password() {
        let url = "postgres://app:hunter2@h/db?password=s3cret";
        let text = format!("The connection string '{url}' cannot be parsed; password hunter2 or s3cret");
        let clean = without_secrets(&text, url);
        assert!(!clean.contains("hunter2") && !clean.contains("s3cret") && !clean.contains(url), "{clean}");
        let odd = "postgres://u:pa#ss@h:99999/db";
        let clean = without_secrets(&format!("bad '{odd}': pa#ss"), odd);
        assert!(!clean.contains("pa#ss"), "{clean}");
    }

    #[tokio::test]
    async fn connection_errors_never_carry_a_secret() {
        for url in [
            "postgres://app@127.0.0.1:1/db?password=hunter2",
            "postgres://u:hunter2@127.0.0.1:99999/db",
            "postgres://u:pa#hunter2@127.0.0.1/db",
            "mysql://u:hunter2@127.0.0.1:1/db",
        ] {
            let config = DatabaseSettings { db_url: Some(url.into()), ..DatabaseSettings::default() };
            let error = connect(&config).await.expect_err("cannot connect").to_string();
            assert!(!error.contains("hunter2"), "{url}: {error}");
        }
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

//! SQLite reads on the calling thread: rusqlite over the pool's own database file, statements cached per
//! connection. A point read from SQLite's page cache takes microseconds, less than handing it to sqlx's
//! connection thread and back; in WAL mode a reader never waits for a writer, and a read that would have to wait
//! anyway (`SQLITE_BUSY`) is not retried here but handed to the pool (see `Reader::rows`).

use std::{path::PathBuf, sync::Mutex};

use rusqlite::{
    Connection, OpenFlags, Row, ToSql,
    types::{ToSqlOutput, ValueRef},
};
use sea_orm::DatabaseConnection;

use super::{Columns, ReadError, ReadParam};

/// Connections to one SQLite file, each used by one thread at a time.
pub struct SqliteReader {
    path: PathBuf,
    /// Connections not in use. A read holds one only while it runs, never across an `.await`, so there are never
    /// more than the threads reading at once (the runtime's workers, mostly).
    idle: Mutex<Vec<Connection>>,
    /// For reads that would have to wait for a lock.
    pool: DatabaseConnection,
}

impl std::fmt::Debug for SqliteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReader").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Statements each connection keeps prepared: the reads' few shapes, and a page statement per distinct limit.
const CACHED_STATEMENTS: usize = 64;

impl SqliteReader {
    /// A reader of the file `db`'s pool opened (not for an in-memory database, which only the pool's own
    /// connection can see).
    pub fn for_pool(db: &DatabaseConnection) -> Self {
        let path = db.get_sqlite_connection_pool().connect_options().get_filename().to_owned();
        Self { path, idle: Mutex::new(Vec::new()), pool: db.clone() }
    }

    /// The pool, for reads that must wait.
    pub fn pool(&self) -> &DatabaseConnection {
        &self.pool
    }

    /// Runs `sql` on this thread.
    pub fn rows<T>(
        &self,
        sql: &str,
        params: &[ReadParam<'_>],
        decode: fn(&dyn Columns) -> Result<T, ReadError>,
    ) -> Result<Vec<T>, ReadError> {
        let connection = match self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(connection) => connection,
            None => self.open()?,
        };
        let rows = run(&connection, sql, params, decode);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
        rows
    }

    /// A connection that can only read. Read-write (with `query_only`) rather than read-only, so it can use the
    /// WAL index even when it is the first connection to open the file after a restart.
    fn open(&self) -> Result<Connection, ReadError> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // No busy handler: a read that meets a lock fails at once and goes to the pool instead of sleeping here.
        connection.busy_timeout(std::time::Duration::ZERO)?;
        connection.pragma_update(None, "query_only", true)?;
        connection.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
        Ok(connection)
    }
}

fn run<T>(
    connection: &Connection,
    sql: &str,
    params: &[ReadParam<'_>],
    decode: fn(&dyn Columns) -> Result<T, ReadError>,
) -> Result<Vec<T>, ReadError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(params))?;
    let mut decoded = Vec::new();
    while let Some(row) = rows.next()? {
        decoded.push(decode(row)?);
    }
    Ok(decoded)
}

/// Whether SQLite refused because another connection holds a lock.
pub fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

impl ToSql for ReadParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Self::Int(value) => ToSqlOutput::from(value),
            Self::Text(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
        })
    }
}

impl Columns for Row<'_> {
    fn int(&self, index: usize) -> Result<i64, ReadError> {
        Ok(self.get(index)?)
    }

    fn text(&self, index: usize) -> Result<String, ReadError> {
        Ok(self.get(index)?)
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, ReadError> {
        Ok(self.get(index)?)
    }
}

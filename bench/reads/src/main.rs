//! `bench-reads`: raw hyper and the fastest Rust driver per engine, serving the resource reads.
//!
//! `bench-limit` says what any HTTP framework can reach; it does no database work, so a database read can never
//! come near it, and a ratio to it cannot tell the server's own cost from the database's. This binary is the
//! other ceiling: the two read routes of the resource API, answered with the server's exact bytes, from the same
//! database, by the same SQL, through the cheapest path Rust has to that engine, and nothing else: no routing
//! framework, no middleware, no authentication, no logging, no metrics. `bench/run` measures the server's reads
//! as a ratio to it, interleaved in the same run, so what is left between the two is the server's own cost.
//!
//! - `GET /api/resource/v1/{id}`: `200` with a [`ResourceView`], or `404` when no row has the id.
//! - `GET /api/resource/v1/?limit=N&after=M`: a [`ResourceList`] in ascending id order (`limit` 1 to 1000,
//!   default 100; `after` 0 or absent for the first page); when more rows follow, `next` and a
//!   `Link: <next>; rel="next"` header name the next page, exactly as the server's `apis/resource/v1.rs` does.
//!
//! The engines:
//!
//! - SQLite (`--sqlite FILE`): rusqlite, run on the runtime worker that took the request (a read of a cached page
//!   takes microseconds, less than a hand-off to another thread), one connection per worker in a thread-local,
//!   `prepare_cached` statements; the limit is a literal, so each distinct limit is one cached statement (SQLite
//!   re-prepares a statement with a bound `LIMIT` on every run). The server owns and creates the file; this opens
//!   it read-write (a WAL reader needs to write the shared-memory index) with `PRAGMA query_only=ON`.
//! - PostgreSQL (`--postgres URL`): tokio-postgres, four connections without TLS, requests spread over them round
//!   robin; concurrent queries on one connection are pipelined by the client. Each connection prepares the two
//!   statements once; the limit is bound.
//!
//! Usage: `bench-reads [--host ADDR] [--port N] (--sqlite FILE | --postgres URL)` (or the `PORT` environment
//! variable; default 8082, `0` picks a free port). It connects and runs both queries once, then prints one line,
//! `listening on http://ADDR:PORT`, to standard output once it accepts connections, and stops on SIGINT or
//! SIGTERM.

use std::{
    cell::RefCell,
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use api_types::{OwnerView, Problem, ResourceList, ResourceView};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use rusqlite::{Connection, OpenFlags};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};
use tokio_postgres::{Client, NoTls, Statement, types::Type};

/// The `SELECT` of a resource with its owner, the same text the server's `db/resources.rs` builds with sea-query.
macro_rules! select {
    () => {
        r#"SELECT "resources"."id", "resources"."name", "owners"."id", "owners"."subject", "owners"."client_id", "owners"."name", "resources"."version" FROM "resources" INNER JOIN "owners" ON "owners"."id" = "resources"."owner_id""#
    };
}

/// One resource by id, SQLite's placeholder.
const SQLITE_BY_ID: &str = concat!(select!(), r#" WHERE "resources"."id" = ?"#);
/// A page after an id, SQLite's placeholder; ` LIMIT n` is appended per call.
const SQLITE_PAGE: &str = concat!(select!(), r#" WHERE "resources"."id" > ? ORDER BY "resources"."id" ASC"#);
/// One resource by id, PostgreSQL's placeholder.
const POSTGRES_BY_ID: &str = concat!(select!(), r#" WHERE "resources"."id" = $1"#);
/// A page after an id, up to a bound limit, PostgreSQL's placeholders.
const POSTGRES_PAGE: &str =
    concat!(select!(), r#" WHERE "resources"."id" > $1 ORDER BY "resources"."id" ASC LIMIT $2"#);

/// The list's path as the server sees it (it trims trailing slashes before routing); `next` starts with it.
const LIST_PATH: &str = "/api/resource/v1";
/// Default page size of the list, as the server's `DEFAULT_LIMIT`.
const DEFAULT_LIMIT: u64 = 100;
/// Largest page size, as the server's `MAX_LIMIT`.
const MAX_LIMIT: u64 = 1000;
/// PostgreSQL connections; requests are spread over them round robin.
const POSTGRES_CONNECTIONS: usize = 4;
/// How long a SQLite reader waits for a lock, as the server's connections do (a WAL reader rarely waits at all).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The command line.
struct Args {
    host: String,
    port: u16,
    engine: EngineArg,
}

/// Which database to read, as given.
enum EngineArg {
    Sqlite(PathBuf),
    Postgres(String),
}

const USAGE: &str = "usage: bench-reads [--host ADDR] [--port N] (--sqlite FILE | --postgres URL)   \
                     (PORT env also works; default 8082)";

fn parse_args() -> Result<Args, String> {
    let mut host = String::from("127.0.0.1");
    let mut port = match std::env::var("PORT") {
        Ok(value) => value.parse().map_err(|_| format!("PORT is not a port number: {value}"))?,
        Err(_) => 8082,
    };
    let mut engine = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value.parse().map_err(|_| format!("--port is not a port number: {value}"))?;
            }
            "--host" => host = args.next().ok_or("--host needs a value")?,
            "--sqlite" | "--postgres" => {
                if engine.is_some() {
                    return Err("give one of --sqlite and --postgres, once".into());
                }
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                engine = Some(if arg == "--sqlite" {
                    EngineArg::Sqlite(PathBuf::from(value))
                } else {
                    EngineArg::Postgres(value)
                });
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}\n{USAGE}")),
        }
    }
    let engine = engine.ok_or_else(|| format!("a database is needed: --sqlite FILE or --postgres URL\n{USAGE}"))?;
    Ok(Args { host, port, engine })
}

// ---------------------------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------------------------

/// The database, ready to read.
enum Engine {
    Sqlite(PathBuf),
    Postgres(Postgres),
}

/// PostgreSQL connections with their prepared statements, and the next one to use.
struct Postgres {
    connections: Vec<PostgresConnection>,
    next: AtomicUsize,
}

struct PostgresConnection {
    client: Client,
    by_id: Statement,
    page: Statement,
}

impl Engine {
    /// Connects, and runs both reads once so that a wrong path, URL or schema fails here, not under load.
    async fn open(arg: EngineArg) -> Result<Self, String> {
        let engine = match arg {
            EngineArg::Sqlite(path) => {
                // A missing file would otherwise be an empty database without tables: say what is wrong instead.
                if !path.is_file() {
                    return Err(format!("no SQLite database at {} (the server creates it)", path.display()));
                }
                Self::Sqlite(path)
            }
            EngineArg::Postgres(url) => Self::Postgres(Postgres::connect(&url).await?),
        };
        engine.by_id(1).await?;
        engine.page(i64::MIN, 2).await?;
        Ok(engine)
    }

    /// The resource with this id, if any.
    async fn by_id(&self, id: i64) -> Result<Option<ResourceView>, String> {
        match self {
            Self::Sqlite(path) => with_sqlite(path, |connection| {
                let mut statement = connection.prepare_cached(SQLITE_BY_ID)?;
                let mut rows = statement.query([id])?;
                rows.next()?.map(sqlite_view).transpose()
            }),
            Self::Postgres(postgres) => {
                let connection = postgres.pick();
                let rows = connection.client.query(&connection.by_id, &[&id]).await.map_err(postgres_error)?;
                rows.first().map(postgres_view).transpose().map_err(postgres_error)
            }
        }
    }

    /// Up to `fetch` resources with ids above `after`, in id order.
    async fn page(&self, after: i64, fetch: u64) -> Result<Vec<ResourceView>, String> {
        match self {
            Self::Sqlite(path) => with_sqlite(path, |connection| {
                let mut statement = connection.prepare_cached(&format!("{SQLITE_PAGE} LIMIT {fetch}"))?;
                let rows = statement.query_map([after], sqlite_view)?;
                rows.collect()
            }),
            Self::Postgres(postgres) => {
                let connection = postgres.pick();
                let fetch = i64::try_from(fetch).unwrap_or(i64::MAX);
                let rows =
                    connection.client.query(&connection.page, &[&after, &fetch]).await.map_err(postgres_error)?;
                rows.iter().map(postgres_view).collect::<Result<_, _>>().map_err(postgres_error)
            }
        }
    }
}

thread_local! {
    /// This runtime worker's SQLite connection, opened on its first request.
    static SQLITE: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// Runs `read` on this thread's SQLite connection, opening it first if needed. Nothing in `read` awaits, so the
/// task cannot move to another worker while it holds the connection.
fn with_sqlite<T>(path: &Path, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
    SQLITE.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(open_sqlite(path)?);
        }
        match slot.as_ref() {
            Some(connection) => read(connection).map_err(|error| format!("SQLite: {error}")),
            None => Err("SQLite: no connection".to_owned()),
        }
    })
}

fn open_sqlite(path: &Path) -> Result<Connection, String> {
    let failed = |error: rusqlite::Error| format!("cannot open the SQLite database {}: {error}", path.display());
    // Read-write, never create: the server owns the file. NO_MUTEX: a connection never leaves its thread.
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(failed)?;
    connection.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(failed)?;
    connection.pragma_update(None, "query_only", true).map_err(failed)?;
    Ok(connection)
}

/// A row of [`select!`], by position; the owner's subject is selected (the same query as the server's) but not
/// shown to readers.
fn sqlite_view(row: &rusqlite::Row<'_>) -> rusqlite::Result<ResourceView> {
    Ok(ResourceView {
        id: row.get(0)?,
        name: row.get(1)?,
        owner: OwnerView { id: row.get(2)?, client_id: row.get(4)?, name: row.get(5)? },
        etag: etag(row.get(0)?, row.get(6)?),
    })
}

impl Postgres {
    async fn connect(url: &str) -> Result<Self, String> {
        let mut connections = Vec::with_capacity(POSTGRES_CONNECTIONS);
        for _ in 0..POSTGRES_CONNECTIONS {
            let (client, connection) = tokio_postgres::connect(url, NoTls)
                .await
                .map_err(|error| format!("cannot connect to {}: {}", redact(url), postgres_error(error)))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    eprintln!("PostgreSQL connection closed: {error}");
                }
            });
            let by_id = prepare(&client, POSTGRES_BY_ID, &[Type::INT8]).await?;
            let page = prepare(&client, POSTGRES_PAGE, &[Type::INT8, Type::INT8]).await?;
            connections.push(PostgresConnection { client, by_id, page });
        }
        Ok(Self { connections, next: AtomicUsize::new(0) })
    }

    fn pick(&self) -> &PostgresConnection {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        &self.connections[index]
    }
}

/// Prepares with the parameter types given (ids and the limit are `bigint`, bound as `i64`), not inferred.
async fn prepare(client: &Client, sql: &str, types: &[Type]) -> Result<Statement, String> {
    client.prepare_typed(sql, types).await.map_err(|error| format!("cannot prepare {sql}: {}", postgres_error(error)))
}

fn postgres_view(row: &tokio_postgres::Row) -> Result<ResourceView, tokio_postgres::Error> {
    Ok(ResourceView {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        owner: OwnerView { id: row.try_get(2)?, client_id: row.try_get(4)?, name: row.try_get(5)? },
        etag: etag(row.try_get(0)?, row.try_get(6)?),
    })
}

/// The server's strong entity tag of a resource: `"<id>.<version>"`.
fn etag(id: i64, version: i64) -> String {
    format!("\"{id}.{version}\"")
}

/// The error with its cause: tokio-postgres' own text is only "db error" when the server refused.
fn postgres_error(error: tokio_postgres::Error) -> String {
    match std::error::Error::source(&error) {
        Some(cause) => format!("PostgreSQL: {error}: {cause}"),
        None => format!("PostgreSQL: {error}"),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.rsplit_once('@').and_then(|(user_info, host)| Some((user_info.split_once(':')?.0, host))) {
        Some((user, host)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------------------

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// One resource.
    Get(i64),
    /// A page: `after` is `i64::MIN` for the first page, as in the server.
    List { limit: u64, after: i64 },
    /// A request the server would refuse with a 400: the field and why.
    Invalid(&'static str, String),
    /// Any other path.
    NotFound,
}

/// Routes like the server: trailing slashes trimmed, the same parameters and ranges.
fn route(path: &str, query: Option<&str>) -> Route {
    let path = path.trim_end_matches('/');
    if path == LIST_PATH {
        return list_route(query);
    }
    match path.strip_prefix(LIST_PATH).and_then(|rest| rest.strip_prefix('/')) {
        Some(id) if !id.contains('/') => match id.parse::<i64>() {
            Ok(id) if id > 0 => Route::Get(id),
            _ => Route::Invalid("id", "must be a positive integer".into()),
        },
        _ => Route::NotFound,
    }
}

fn list_route(query: Option<&str>) -> Route {
    let (mut limit, mut after) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "limit" => match value.parse::<u64>() {
                Ok(value) => limit = Some(value),
                Err(_) => return Route::Invalid("limit", "must be a number".into()),
            },
            "after" => match value.parse::<i64>() {
                Ok(value) => after = Some(value),
                Err(_) => return Route::Invalid("after", "must be a number".into()),
            },
            _ => {}
        }
    }
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Route::Invalid("limit", format!("must be between 1 and {MAX_LIMIT}"));
    }
    match after {
        None | Some(0) => Route::List { limit, after: i64::MIN },
        Some(after) if after > 0 => Route::List { limit, after },
        Some(_) => Route::Invalid("after", "must be a resource id (a positive integer) or 0".into()),
    }
}

/// The path and query of the page after `last`, as the server writes `next`.
fn next_page(limit: u64, last: i64) -> String {
    format!("{LIST_PATH}?limit={limit}&after={last}")
}

async fn answer(engine: &Engine, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if request.method() != Method::GET {
        return problem(StatusCode::METHOD_NOT_ALLOWED, "Only GET is served here", path);
    }
    let outcome = match route(path, request.uri().query()) {
        Route::Get(id) => match engine.by_id(id).await {
            Ok(Some(view)) => {
                let etag = HeaderValue::try_from(view.etag.as_str()).ok().map(|etag| (header::ETAG, etag));
                json(serde_json::to_vec(&view), etag)
            }
            Ok(None) => Ok(problem(StatusCode::NOT_FOUND, &format!("No resource with id {id}"), path)),
            Err(error) => Err(error),
        },
        Route::List { limit, after } => match engine.page(after, limit + 1).await {
            Ok(mut resources) => {
                let more = resources.len() as u64 > limit;
                resources.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                let next = if more { resources.last().map(|last| next_page(limit, last.id)) } else { None };
                let link = next
                    .as_ref()
                    .and_then(|next| HeaderValue::try_from(format!("<{next}>; rel=\"next\"")).ok())
                    .map(|link| (header::LINK, link));
                json(serde_json::to_vec(&ResourceList { resources, next }), link)
            }
            Err(error) => Err(error),
        },
        Route::Invalid(field, why) => Ok(problem(StatusCode::BAD_REQUEST, &format!("{field}: {why}"), path)),
        Route::NotFound => Ok(problem(StatusCode::NOT_FOUND, "No route matches", path)),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        problem(StatusCode::INTERNAL_SERVER_ERROR, "The database read failed", path)
    })
}

/// A `200` JSON answer with one more header (`Link` of a page, `ETag` of a resource), as the server's. `Full` sets
/// `content-length` and hyper adds `date`, as for axum's `Json`.
fn json(
    body: serde_json::Result<Vec<u8>>,
    extra: Option<(header::HeaderName, HeaderValue)>,
) -> Result<Response<Full<Bytes>>, String> {
    let body = body.map_err(|error| format!("cannot serialise the answer: {error}"))?;
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some((name, value)) = extra {
        headers.insert(name, value);
    }
    Ok(response)
}

/// An RFC 9457 answer like the server's, without its request id and field list: for the cases a benchmark
/// should never see.
fn problem(status: StatusCode, detail: &str, path: &str) -> Response<Full<Bytes>> {
    let body = Problem {
        problem_type: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("").into(),
        status: status.as_u16(),
        detail: detail.into(),
        instance: path.into(),
        request_id: None,
        errors: Vec::new(),
        existing_id: None,
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors: keep serving the connections already open; the client counts the error.
            Err(_) => continue,
        };
        // One request at a time per connection: answers must not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let service = service_fn(|request| {
                let engine = Arc::clone(&engine);
                async move { Ok::<_, Infallible>(answer(&engine, request).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn run(args: Args) -> Result<(), String> {
    let engine = Arc::new(Engine::open(args.engine).await?);
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|error| format!("cannot listen on {}:{}: {error}", args.host, args.port))?;
    let address: SocketAddr = listener.local_addr().map_err(|error| error.to_string())?;
    println!("listening on http://{address}");
    let mut terminate = signal(SignalKind::terminate()).map_err(|error| error.to_string())?;
    tokio::select! {
        () = serve(listener, engine) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // One worker per core, as the server and bench-limit; with SQLite, also one connection per worker.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_the_server() {
        assert_eq!(route("/api/resource/v1/7", None), Route::Get(7));
        assert_eq!(route("/api/resource/v1/7/", None), Route::Get(7));
        assert!(matches!(route("/api/resource/v1/0", None), Route::Invalid("id", _)));
        assert!(matches!(route("/api/resource/v1/x", None), Route::Invalid("id", _)));
        assert_eq!(route("/api/resource/v1/7/x", None), Route::NotFound);
        assert_eq!(route("/healthz/", None), Route::NotFound);
        assert_eq!(route("/api/resource/v1/", None), Route::List { limit: 100, after: i64::MIN });
        assert_eq!(route("/api/resource/v1", Some("limit=100&after=0")), Route::List { limit: 100, after: i64::MIN });
        assert_eq!(route("/api/resource/v1/", Some("after=5&limit=3")), Route::List { limit: 3, after: 5 });
        assert!(matches!(route("/api/resource/v1/", Some("limit=1001")), Route::Invalid("limit", _)));
        assert!(matches!(route("/api/resource/v1/", Some("limit=0")), Route::Invalid("limit", _)));
        assert!(matches!(route("/api/resource/v1/", Some("after=-1")), Route::Invalid("after", _)));
        assert_eq!(next_page(100, 42), "/api/resource/v1?limit=100&after=42");
        assert_eq!(redact("postgres://u:secret@127.0.0.1/db"), "postgres://u:***@127.0.0.1/db");
        assert_eq!(redact("postgres://u@127.0.0.1/db"), "postgres://u@127.0.0.1/db");
    }

    #[test]
    fn the_sql_is_the_servers() {
        let select = r#"SELECT "resources"."id", "resources"."name", "owners"."id", "owners"."subject", "owners"."client_id", "owners"."name", "resources"."version" FROM "resources" INNER JOIN "owners" ON "owners"."id" = "resources"."owner_id""#;
        assert_eq!(SQLITE_BY_ID, format!(r#"{select} WHERE "resources"."id" = ?"#));
        assert!(POSTGRES_PAGE.ends_with(r#"WHERE "resources"."id" > $1 ORDER BY "resources"."id" ASC LIMIT $2"#));
        assert_eq!(SQLITE_PAGE.replace('?', "$1"), POSTGRES_PAGE.trim_end_matches(" LIMIT $2"));
    }

    #[tokio::test]
    async fn reads_a_sqlite_database() {
        let path = std::env::temp_dir().join(format!("bench-reads-test-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let setup = Connection::open(&path).expect("creates the database");
        setup
            .execute_batch(
                "PRAGMA journal_mode=WAL;
                CREATE TABLE owners (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, client_id TEXT, name TEXT NOT NULL);
                CREATE TABLE resources (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);
                INSERT INTO owners VALUES (1, 'sub', NULL, 'ada');
                INSERT INTO resources VALUES (1, 1, 'a', 1), (2, 1, 'b', 4), (3, 1, 'c', 1);",
            )
            .expect("creates the tables");
        let engine = Engine::open(EngineArg::Sqlite(path.clone())).await.expect("opens");
        let view = engine.by_id(2).await.expect("reads").expect("finds the row");
        assert_eq!(
            serde_json::to_string(&view).ok().as_deref(),
            Some(r#"{"id":2,"name":"b","owner":{"id":1,"client_id":null,"name":"ada"},"etag":"\"2.4\""}"#)
        );
        assert_eq!(engine.by_id(9).await.expect("reads"), None);
        let page = engine.page(1, 2).await.expect("reads");
        assert_eq!(page.iter().map(|view| view.id).collect::<Vec<_>>(), [2, 3]);
        drop(setup);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

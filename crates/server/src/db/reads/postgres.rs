//! PostgreSQL reads pipelined over a few connections: tokio-postgres sends every query a `Client` is given at
//! once, without waiting for the answers before it, so many concurrent reads share a write and a read per batch
//! on one connection (sqlx's pool runs one query per connection at a time and, on two cores, contends with a
//! backend process per connection). Statements are prepared once per connection.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::task::AbortHandle;
use tokio_postgres::{Client, Row, Statement, config::SslMode, types::ToSql};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Columns, ReadError, ReadParam};
use crate::{config::DatabaseSettings, db::DB_WAIT};

/// Connections the reads are spread over. The benchmark's ceiling (`bench/reads`) uses as many: more only add
/// backend processes competing for the same cores; fewer batch more but wait longer for each batch.
const CONNECTIONS: usize = 4;

/// `application_name` of the read connections, unless the URL names one.
pub const APPLICATION_NAME: &str = "rust-api-axum reads";

/// Pipelined connections to one PostgreSQL database, opened on first use and again after one breaks.
pub struct PostgresReader {
    config: tokio_postgres::Config,
    /// `SET search_path` for `db_schema`, run on each new connection, as the pool does.
    search_path: Option<String>,
    tls: MakeRustlsConnect,
    slots: [Slot; CONNECTIONS],
    next: AtomicUsize,
}

impl std::fmt::Debug for PostgresReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the configuration: it holds the password.
        f.debug_struct("PostgresReader").field("connections", &CONNECTIONS).finish_non_exhaustive()
    }
}

/// One connection's place: the live session, and a gate so that only one caller reconnects it.
#[derive(Default)]
struct Slot {
    session: Mutex<Option<Arc<Session>>>,
    connecting: tokio::sync::Mutex<()>,
}

/// A connection with the statements prepared on it, by SQL text.
struct Session {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
    /// Set when a read was abandoned after waiting [`STUCK`] for its answer: the connection is not closed, but
    /// its peer may never answer again (a dropped network path), so it is replaced rather than queued behind.
    stuck: AtomicBool,
    /// The task driving the socket, ended with the session: a connection to a silent peer would otherwise wait
    /// for TCP to give up, which may take hours.
    connection: AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// How long an answer may be outstanding before a read that is abandoned (by the store's timeout, or because its
/// caller went away) marks its connection stuck. A healthy server answers these reads in milliseconds.
const STUCK: Duration = Duration::from_secs(1);

/// Marks the session stuck if dropped before `done`, after waiting [`STUCK`] or longer.
struct Outstanding<'a> {
    session: &'a Session,
    since: Instant,
    done: bool,
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        if !self.done && self.since.elapsed() >= STUCK {
            self.session.stuck.store(true, Ordering::Relaxed);
        }
    }
}

impl PostgresReader {
    /// A reader of the database `url` names, or why the URL is left to the pool (tokio-postgres understands
    /// `sslmode` disable, prefer and require, not verify-ca, verify-full or `sslrootcert`).
    pub fn new(url: &str, config: &DatabaseSettings) -> Result<Self, String> {
        let url = url.replacen("postgresql:", "postgres:", 1);
        let mut pg_config: tokio_postgres::Config =
            url.parse().map_err(|error| format!("the pipelined reader does not accept this URL: {error}"))?;
        pg_config.connect_timeout(DB_WAIT);
        if pg_config.get_application_name().is_none() {
            // So that an operator can tell these connections from the pool's in `pg_stat_activity`.
            pg_config.application_name(APPLICATION_NAME);
        }
        if !url.contains("sslmode=") {
            // sqlx's default, so that both kinds of connection are equally protected.
            pg_config.ssl_mode(SslMode::Prefer);
        }
        let search_path = config.db_schema.as_deref().map(set_search_path);
        Ok(Self { config: pg_config, search_path, tls: tls(), slots: Default::default(), next: AtomicUsize::new(0) })
    }

    /// Runs `sql` on the next connection in turn.
    pub async fn rows<T>(
        &self,
        sql: &str,
        params: &[ReadParam<'_>],
        decode: fn(&dyn Columns) -> Result<T, ReadError>,
    ) -> Result<Vec<T>, ReadError> {
        let session = self.session().await?;
        let mut outstanding = Outstanding { session: &session, since: Instant::now(), done: false };
        let statement = session.statement(sql).await?;
        let values: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|param| match param {
                ReadParam::Int(value) => value as &(dyn ToSql + Sync),
                ReadParam::Text(value) => value as &(dyn ToSql + Sync),
            })
            .collect();
        let answer = session.client.query(&statement, &values).await;
        outstanding.done = true;
        drop(outstanding);
        let rows = match answer {
            Ok(rows) => rows,
            Err(error) => {
                // A statement the server no longer accepts (the schema changed under it) is prepared again next time.
                session.forget(sql);
                return Err(error.into());
            }
        };
        rows.iter().map(|row| decode(row)).collect()
    }

    /// The next live session, connecting its slot if it has none or its connection closed.
    async fn session(&self) -> Result<Arc<Session>, ReadError> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % CONNECTIONS];
        match slot.live() {
            Some(session) => Ok(session),
            // Boxed: connecting is rare, and its future is large; inline, every read's future would carry it.
            None => Box::pin(self.connect(slot)).await,
        }
    }

    /// Connects `slot` (unless another read just did).
    async fn connect(&self, slot: &Slot) -> Result<Arc<Session>, ReadError> {
        let _gate = slot.connecting.lock().await;
        if let Some(session) = slot.live() {
            return Ok(session);
        }
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!("a pipelined PostgreSQL read connection ended: {error}");
            }
        })
        .abort_handle();
        let session =
            Session { client, statements: Mutex::new(HashMap::new()), stuck: AtomicBool::new(false), connection };
        if let Some(search_path) = &self.search_path {
            session.client.batch_execute(search_path).await?;
        }
        let session = Arc::new(session);
        if let Ok(mut current) = slot.session.lock() {
            *current = Some(Arc::clone(&session));
        }
        Ok(session)
    }
}

impl Slot {
    fn live(&self) -> Option<Arc<Session>> {
        let current = self.session.lock().ok()?;
        current
            .as_ref()
            .filter(|session| !session.client.is_closed() && !session.stuck.load(Ordering::Relaxed))
            .cloned()
    }
}

impl Session {
    async fn statement(&self, sql: &str) -> Result<Statement, ReadError> {
        if let Some(statement) = self.statements.lock().ok().and_then(|statements| statements.get(sql).cloned()) {
            return Ok(statement);
        }
        // Boxed like connecting: once per connection and statement.
        let statement = Box::pin(self.client.prepare(sql)).await?;
        if let Ok(mut statements) = self.statements.lock() {
            statements.insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }

    fn forget(&self, sql: &str) {
        if let Ok(mut statements) = self.statements.lock() {
            statements.remove(sql);
        }
    }
}

/// `SET search_path` for `db_schema` exactly as SeaORM sets it on the pool's connections: a comma-separated
/// list, each name double-quoted unless it already is.
fn set_search_path(schemas: &str) -> String {
    if schemas.starts_with('"') {
        return format!("SET search_path = {schemas}");
    }
    let names: Vec<String> = schemas
        .split(',')
        .map(|name| if name.starts_with('"') { name.to_owned() } else { format!("\"{name}\"") })
        .collect();
    format!("SET search_path = {}", names.join(","))
}

/// TLS as sqlx does it for `prefer` and `require` (libpq's meaning): encrypted, the server's certificate not
/// checked. Modes that check it (verify-ca, verify-full) are not accepted by tokio-postgres and stay on the pool.
fn tls() -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(EncryptOnly(provider.signature_verification_algorithms));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth());
    // ring's defaults always include the safe protocol versions; the fallback only keeps this free of panics.
    MakeRustlsConnect::new(config.unwrap_or_else(|_| {
        rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()
    }))
}

/// Accepts any certificate, but still checks that the server holds its key.
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

impl Columns for Row {
    fn int(&self, index: usize) -> Result<i64, ReadError> {
        Ok(self.try_get(index)?)
    }

    fn text(&self, index: usize) -> Result<String, ReadError> {
        Ok(self.try_get(index)?)
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, ReadError> {
        Ok(self.try_get(index)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_is_set_as_seaorm_sets_it_on_the_pool() {
        assert_eq!(set_search_path("app"), r#"SET search_path = "app""#);
        assert_eq!(set_search_path("app,public"), r#"SET search_path = "app","public""#);
        assert_eq!(set_search_path(r#""My App""#), r#"SET search_path = "My App""#);
    }

    #[test]
    fn urls_tokio_postgres_cannot_read_are_left_to_the_pool() {
        let config = DatabaseSettings::default();
        assert!(PostgresReader::new("postgres://app:pw@db:5432/app", &config).is_ok());
        assert!(PostgresReader::new("postgresql://app@db/app?sslmode=require", &config).is_ok());
        let refused = PostgresReader::new("postgres://app:hunter2@db/app?sslmode=verify-full", &config)
            .expect_err("verify-full stays on the pool");
        assert!(!refused.contains("hunter2"), "{refused}");
    }
}

//! `rust-api-axum doctor`: checks what a deployment needs, one line per check with ✓ or ✗ and, when it fails,
//! what to do about it: the configuration parses (and which layer set what), the instance path is writable, the
//! database answers and its schema is current, the OpenID provider's discovery and keys answer over the
//! configured TLS, this clock agrees with the provider's, and the ports are free. It changes nothing: no schema
//! is migrated and no database file is created.

use std::{
    io::Write,
    time::{Duration, SystemTime},
};

use migration::{Migrator, MigratorTrait};
use serde::Serialize;

use crate::{
    auth::{OidcSettings, http::provider_client, verifier::LEEWAY_SECS},
    config::{Config, ConfigError, DatabaseSettings, Loaded},
    db,
};

/// How long one check waits for a server (database, provider) before it fails.
const CHECK_WAIT: Duration = Duration::from_secs(5);

/// One check's outcome.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked (`database`).
    pub check: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(check: &'static str, detail: impl Into<String>) -> Self {
        Self { check, ok: true, detail: detail.into(), fix: None }
    }

    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { check, ok: false, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Runs every check that `loaded` allows (none past a configuration that does not parse).
pub async fn checks(loaded: Result<Loaded, ConfigError>) -> Vec<Check> {
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            return vec![Check::fail(
                "configuration",
                error.to_string(),
                "correct the key, file or variable named above (docs/configuration.md lists every key)",
            )];
        }
    };
    let mut checks = vec![configuration(&loaded)];
    let config = &loaded.config;
    checks.push(instance_path(&config.database));
    checks.extend(database(&config.database).await);
    checks.extend(provider(config).await);
    checks.extend(ports(config).await);
    checks
}

/// Prints `checks` as lines (or one JSON object) and says whether all passed.
pub fn report(checks: &[Check], json: bool, out: &mut impl Write) -> std::io::Result<bool> {
    let ok = checks.iter().all(|check| check.ok);
    if json {
        let document = serde_json::json!({ "ok": ok, "checks": checks });
        writeln!(out, "{document}")?;
    } else {
        for check in checks {
            let mark = if check.ok { '✓' } else { '✗' };
            match &check.fix {
                Some(fix) => writeln!(out, "{mark} {}: {} (fix: {fix})", check.check, one_line(&check.detail))?,
                None => writeln!(out, "{mark} {}: {}", check.check, one_line(&check.detail))?,
            }
        }
    }
    Ok(ok)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn configuration(loaded: &Loaded) -> Check {
    if loaded.sources.is_empty() {
        return Check::pass("configuration", "parses; every key at its default");
    }
    let set: Vec<String> = loaded.sources.iter().map(|(key, source)| format!("{key} from {source}")).collect();
    Check::pass("configuration", format!("parses; {}", set.join(", ")))
}

fn instance_path(settings: &DatabaseSettings) -> Check {
    let path = &settings.instance_path;
    let probe = path.join(".doctor-probe");
    let written = db::create_private_dir(path).and_then(|()| std::fs::write(&probe, b"probe"));
    let _ = std::fs::remove_file(&probe);
    match written {
        Ok(()) => Check::pass("instance path", format!("{} is writable", path.display())),
        Err(error) => Check::fail(
            "instance path",
            format!("cannot write in {}: {error}", path.display()),
            "make the directory writable by this user, or point instance_path (--instance-path) elsewhere",
        ),
    }
}

async fn database(settings: &DatabaseSettings) -> Vec<Check> {
    if let Some(file) = db::missing_sqlite_file(settings) {
        let pending = Migrator::migrations().len();
        let detail = format!("no database file at {} yet; the first start creates it", file.display());
        return vec![Check::pass("database", detail), schema(pending, settings.auto_migrate)];
    }
    let shown = db::database_url(settings).map(|url| db::redact(&url)).unwrap_or_default();
    let connected = match tokio::time::timeout(CHECK_WAIT, db::connect(settings)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            let fix = "check db_url (--db), that the database server runs and that it accepts this login";
            return vec![Check::fail("database", error.to_string(), fix)];
        }
        Err(_) => {
            let fix = "check db_url (--db) and the network path to the database server";
            return vec![Check::fail("database", format!("{shown} did not answer within 5 s"), fix)];
        }
    };
    let mut checks = vec![Check::pass("database", format!("{shown} answers"))];
    match Migrator::get_pending_migrations(&connected).await {
        Ok(pending) => checks.push(schema(pending.len(), settings.auto_migrate)),
        Err(error) => checks.push(Check::fail(
            "schema",
            format!("cannot read the migration history: {error}"),
            "check that the login may read the schema (and db_schema on PostgreSQL)",
        )),
    }
    connected.close().await.ok();
    checks
}

fn schema(pending: usize, auto_migrate: bool) -> Check {
    match (pending, auto_migrate) {
        (0, _) => Check::pass("schema", "current"),
        (pending, true) => {
            Check::pass("schema", format!("{pending} migration(s) pending; they are applied at start (auto_migrate)"))
        }
        (pending, false) => Check::fail(
            "schema",
            format!("{pending} migration(s) pending; production mode (--no-migrate) refuses to start"),
            "run `rust-api-axum db upgrade` with the same configuration",
        ),
    }
}

async fn provider(config: &Config) -> Vec<Check> {
    let settings = match OidcSettings::from_settings(&config.auth) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            return vec![Check::pass(
                "provider",
                "no OIDC configuration: the server runs without authentication and protected routes are closed",
            )];
        }
        Err(error) => {
            return vec![Check::fail(
                "provider",
                error.to_string(),
                "correct client_secrets.json (oidc_client_secrets) or the `web` entry",
            )];
        }
    };
    let client = match provider_client(settings.ca_cert.as_deref(), settings.provider_timeout) {
        Ok(client) => client,
        Err(error) => return vec![Check::fail("provider", error.to_string(), "point ca_cert at a PEM bundle")],
    };
    let discovery_url = format!("{}/.well-known/openid-configuration", settings.issuer.trim_end_matches('/'));
    let unreachable = "check the issuer in client_secrets.json, the network path to it, and ca_cert for a private CA";
    let answer = match tokio::time::timeout(CHECK_WAIT, client.get(&discovery_url).send()).await {
        Ok(Ok(answer)) if answer.status().is_success() => answer,
        Ok(Ok(answer)) => {
            let detail = format!("{discovery_url} answered {}", answer.status());
            return vec![Check::fail("provider", detail, unreachable)];
        }
        Ok(Err(error)) => {
            return vec![Check::fail("provider", format!("{discovery_url}: {}", error.without_url()), unreachable)];
        }
        Err(_) => {
            return vec![Check::fail("provider", format!("{discovery_url} did not answer within 5 s"), unreachable)];
        }
    };
    let clock = clock(answer.headers().get(reqwest::header::DATE));
    let metadata: serde_json::Value = match answer.json().await {
        Ok(metadata) => metadata,
        Err(error) => {
            let detail = format!("{discovery_url} is not a discovery document: {}", error.without_url());
            return vec![Check::fail("provider", detail, unreachable), clock];
        }
    };
    let jwks_uri = settings
        .jwks_uri
        .clone()
        .or_else(|| metadata.get("jwks_uri").and_then(serde_json::Value::as_str).map(str::to_owned));
    let Some(jwks_uri) = jwks_uri else {
        let fix = "set oidc.jwks_uri, or use a provider whose discovery names jwks_uri";
        return vec![Check::fail("provider", format!("{discovery_url} names no jwks_uri"), fix), clock];
    };
    let keys = async {
        let answer = client.get(&jwks_uri).send().await?.error_for_status()?;
        answer.json::<serde_json::Value>().await
    };
    let provider = match tokio::time::timeout(CHECK_WAIT, keys).await {
        Ok(Ok(set)) => match set.get("keys").and_then(serde_json::Value::as_array).map(Vec::len) {
            Some(count) if count > 0 => {
                Check::pass("provider", format!("{} answers; {count} signing key(s) at {jwks_uri}", settings.issuer))
            }
            _ => Check::fail("provider", format!("{jwks_uri} holds no signing keys"), unreachable),
        },
        Ok(Err(error)) => Check::fail("provider", format!("{jwks_uri}: {}", error.without_url()), unreachable),
        Err(_) => Check::fail("provider", format!("{jwks_uri} did not answer within 5 s"), unreachable),
    };
    vec![provider, clock]
}

/// Compares this clock with the provider's `Date`: tokens are judged within a leeway of it.
fn clock(date: Option<&reqwest::header::HeaderValue>) -> Check {
    let Some(theirs) = date.and_then(|value| value.to_str().ok()).and_then(|text| httpdate::parse_http_date(text).ok())
    else {
        return Check::pass("clock", "the provider sent no Date header to compare with");
    };
    let ours = SystemTime::now();
    let (offset, behind) = match ours.duration_since(theirs) {
        Ok(ahead) => (ahead, false),
        Err(error) => (error.duration(), true),
    };
    // The header has whole seconds: allow one for that and one for the round trip.
    let limit = Duration::from_secs(LEEWAY_SECS);
    let direction = if behind { "behind" } else { "ahead of" };
    let detail =
        format!("{} s {direction} the provider's (tokens are judged within {} s)", offset.as_secs(), limit.as_secs());
    if offset > limit + Duration::from_secs(2) {
        Check::fail(
            "clock",
            detail,
            "synchronise this machine's clock (NTP); tokens will be refused as expired or not yet valid",
        )
    } else {
        Check::pass("clock", detail)
    }
}

async fn ports(config: &Config) -> Vec<Check> {
    let host = &config.server.host;
    let mut ports = vec![("port", config.server.port)];
    if let (true, Some(port)) = (config.observability.metrics_enabled, config.observability.metrics_port) {
        ports.push(("metrics port", port));
    }
    let mut checks = Vec::new();
    for (check, port) in ports {
        checks.push(match platform::listen::bind(host, port).await {
            Ok(_) => Check::pass(check, format!("{host}:{port} is free")),
            // Run beside the server (`kubectl exec ... doctor`), its own port is taken by the server itself.
            Err(_) if serves_liveness(host, port).await => {
                Check::pass(check, format!("{host}:{port} is served by a running instance (its /livez answers)"))
            }
            Err(error) => Check::fail(check, error.to_string(), "stop what listens there, or choose another port"),
        });
    }
    checks
}

/// Whether `host:port` answers `/livez` with 200, as a running instance of this service does.
async fn serves_liveness(host: &str, port: u16) -> bool {
    let Ok(client) = provider_client(None, Duration::from_secs(2)) else { return false };
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let url = format!("http://{host}:{port}{}", platform::probes::LIVEZ);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), client.get(url).send()).await,
        Ok(Ok(answer)) if answer.status().is_success()
    )
}

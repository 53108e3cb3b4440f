//! Layered configuration (12-factor): built-in defaults < the JSON file named by `APP_CONFIG` < `APP_CONFIG_<KEY>`
//! environment variables < command-line flags. Every key is documented once, in `keys!` below, and
//! `docs/configuration.md` is generated from that (`reference`). Each subsystem is handed its own section of the
//! result, never the whole.

use std::{
    num::NonZeroU32,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Json, Serialized},
};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, de::IgnoredAny};

pub use platform::settings::{
    ForwardedHeader, GuardSettings, LimitSettings, LogFormat, ObservabilitySettings, ServerSettings,
};

use crate::cli::Cli;

mod reference;

pub use reference::reference;

/// Environment variable naming the JSON configuration file (the Flask original's `FLASK_CONFIG`).
pub const CONFIG_FILE_ENV: &str = "APP_CONFIG";
/// Prefix of the environment variables that set single keys, e.g. `APP_CONFIG_PORT=9000`.
pub const ENV_PREFIX: &str = "APP_CONFIG_";

/// The server's whole configuration, after all layers are merged: one typed section per subsystem, each handed
/// only its own (the platform's `server`, `limits`, `guards` and `observability`; the app's `database` and
/// `auth`). The keys users write stay flat (`APP_CONFIG_PORT`, `"db_url"` in the file): [`Keys`] is that form, and
/// every field of a section is named exactly like its key. The keys that can hold a secret are [`SecretString`]s,
/// so `{:?}` of the configuration (or of anything holding it) never shows one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "Keys", into = "Keys")]
pub struct Config {
    /// Where the server listens and how it stops.
    pub server: ServerSettings,
    /// What one request and one connection may cost.
    pub limits: LimitSettings,
    /// Rate limits, CORS and trusted proxies.
    pub guards: GuardSettings,
    /// Logs, metrics and traces.
    pub observability: ObservabilitySettings,
    /// The database and the instance path.
    pub database: DatabaseSettings,
    /// The OpenID provider the bearer tokens come from.
    pub auth: AuthSettings,
    /// How the APIs treat requests (conditional writes).
    pub api: ApiSettings,
}

/// The `database` section.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Directory for the server's own files (the default SQLite database); created when missing.
    pub instance_path: PathBuf,
    /// Database URI (`sqlite://`, `postgres://`, `mysql://`), which may carry a password; `None` means
    /// `rust-api-axum.sqlite` in the instance path.
    pub db_url: Option<SecretString>,
    /// PostgreSQL schema to work in (set as `search_path`), for a role whose tables live in its own schema.
    pub db_schema: Option<DbSchema>,
    /// Largest number of pooled database connections.
    pub db_max_connections: u32,
    /// Bring the schema up to date at start (the CLI default); `false` is the production mode, which never
    /// changes the schema and refuses to start while it is behind.
    pub auto_migrate: bool,
    /// How the hot reads run: `direct` (the fastest driver per engine, see `db/reads`) or `pool` (SeaORM's pool,
    /// like every write).
    pub db_reads: ReadEngine,
    /// Seconds an idempotency key (and the answer it earned) is kept; expired keys are removed in the background.
    pub idempotency_retention_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            instance_path: PathBuf::from("var/instance"),
            db_url: None,
            db_schema: None,
            db_max_connections: 10,
            auto_migrate: true,
            db_reads: ReadEngine::Direct,
            idempotency_retention_secs: 86_400,
        }
    }
}

/// A PostgreSQL schema name that can go into `SET search_path` as it is: a plain identifier (a letter or `_`,
/// then letters, digits or `_`, at most 63 bytes, PostgreSQL's limit). The driver pastes the name into SQL
/// unquoted-but-for-its-own-quotes, so anything else (a `;`, a quote, a list) is refused when the configuration
/// loads, once, instead of being trusted at every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DbSchema(String);

impl TryFrom<String> for DbSchema {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let mut bytes = name.bytes();
        let starts_well = bytes.next().is_some_and(|first| first.is_ascii_alphabetic() || first == b'_');
        if starts_well && name.len() <= 63 && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_') {
            Ok(Self(name))
        } else {
            // The value itself is not repeated: it may hold anything, a line break included.
            Err("not a plain identifier (a letter or _, then letters, digits or _, at most 63 in all)".to_owned())
        }
    }
}

impl std::str::FromStr for DbSchema {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::try_from(name.to_owned())
    }
}

impl From<DbSchema> for String {
    fn from(schema: DbSchema) -> Self {
        schema.0
    }
}

impl std::ops::Deref for DbSchema {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DbSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which engine runs the hot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadEngine {
    /// rusqlite on the calling thread (SQLite files), pipelined tokio-postgres (PostgreSQL); the pool elsewhere.
    Direct,
    /// SeaORM's pool for every read, like the writes: one driver, one pool to size.
    Pool,
}

/// The `auth` section: where the OpenID provider's registration comes from.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Path to a Flask-OIDC style `client_secrets.json`; `None` runs without authentication unless `web` is
    /// given here.
    pub oidc_client_secrets: Option<PathBuf>,
    /// The original's embedded form: the `web` entry of `client_secrets.json` inside this configuration, kept as
    /// its JSON text because it holds the client secret; `OidcSettings` reads it.
    pub web: Option<SecretString>,
    /// Extra OIDC settings that override those in `web`.
    pub oidc: Option<OidcExtras>,
    /// PEM bundle of extra CA certificates trusted for every call to the OpenID provider (and the trace
    /// collector).
    pub ca_cert: Option<PathBuf>,
}

/// The `api` section: rules the APIs apply to every request of a kind.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    /// Answer a `PUT` or `DELETE` of a resource without `If-Match` with 428, so no write can replace a version its
    /// client has not seen.
    pub require_if_match: bool,
}

/// Our optional OIDC settings, in the top-level `oidc` object (of this configuration, or of `client_secrets.json`).
/// Unlike the `web` entry, which providers fill with members of their own, every member here is ours, so a
/// misspelt one is refused instead of silently falling back to a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcExtras {
    /// Accepted `aud` values: one or a list; this server's client id when unset.
    pub audience: Option<OneOrMany>,
    /// Where the signing keys are; discovered when unset.
    pub jwks_uri: Option<String>,
    /// The public client Swagger UI's Authorize signs in as.
    pub docs_client_id: Option<String>,
    /// Scope required to read resources.
    pub read_scope: Option<String>,
    /// Scope required to change resources.
    pub write_scope: Option<String>,
    /// Claim that holds the name to show.
    pub username_claim: Option<String>,
    /// How long a positive introspection answer is trusted.
    pub introspection_cache_secs: Option<u64>,
    /// How often the signing keys are fetched again in the background.
    pub jwks_refresh_secs: Option<u64>,
    /// Longest lifetime (`exp - iat`) an accepted JWT may have.
    pub max_token_lifetime_secs: Option<u64>,
    /// Whether an introspection answer must name our audience.
    pub introspection_requires_audience: Option<bool>,
    /// Accepted JWT `typ` header values; `""` admits a token without one.
    pub jwt_types: Option<Vec<String>>,
    /// Whether plain-HTTP provider URLs off loopback are allowed.
    pub allow_insecure_http: Option<bool>,
    /// Longest wait for one call to the provider.
    pub provider_timeout_secs: Option<u64>,
    /// Calls to the provider in flight at once, at most.
    pub provider_max_in_flight: Option<usize>,
    /// Whether ECDSA signatures must be in low-S form.
    pub ecdsa_low_s_only: Option<bool>,
}

impl OidcExtras {
    /// Takes every member `overrides` sets.
    pub fn merge(&mut self, overrides: OidcExtras) {
        let OidcExtras {
            audience,
            jwks_uri,
            docs_client_id,
            read_scope,
            write_scope,
            username_claim,
            introspection_cache_secs,
            jwks_refresh_secs,
            max_token_lifetime_secs,
            introspection_requires_audience,
            jwt_types,
            allow_insecure_http,
            provider_timeout_secs,
            provider_max_in_flight,
            ecdsa_low_s_only,
        } = overrides;
        self.audience = audience.or(self.audience.take());
        self.jwks_uri = jwks_uri.or(self.jwks_uri.take());
        self.docs_client_id = docs_client_id.or(self.docs_client_id.take());
        self.read_scope = read_scope.or(self.read_scope.take());
        self.write_scope = write_scope.or(self.write_scope.take());
        self.username_claim = username_claim.or(self.username_claim.take());
        self.introspection_cache_secs = introspection_cache_secs.or(self.introspection_cache_secs);
        self.jwks_refresh_secs = jwks_refresh_secs.or(self.jwks_refresh_secs);
        self.max_token_lifetime_secs = max_token_lifetime_secs.or(self.max_token_lifetime_secs);
        self.introspection_requires_audience = introspection_requires_audience.or(self.introspection_requires_audience);
        self.jwt_types = jwt_types.or(self.jwt_types.take());
        self.allow_insecure_http = allow_insecure_http.or(self.allow_insecure_http);
        self.provider_timeout_secs = provider_timeout_secs.or(self.provider_timeout_secs);
        self.provider_max_in_flight = provider_max_in_flight.or(self.provider_max_in_flight);
        self.ecdsa_low_s_only = ecdsa_low_s_only.or(self.ecdsa_low_s_only);
    }
}

/// The members of `oidc` with their meaning, for the reference (a test keeps this list equal to [`OidcExtras`]).
const OIDC_MEMBERS: &[(&str, &str)] = &[
    ("audience", "Accepted `aud` values: one or a list. Default: this server's `client_id`."),
    ("jwks_uri", "Where the signing keys are. Default: from discovery (`{issuer}/.well-known/openid-configuration`)."),
    (
        "docs_client_id",
        "The public client (PKCE, no secret) Swagger UI's Authorize signs in as. Default: this server's `client_id`.",
    ),
    ("read_scope", "Scope needed to read resources. Default: `rust-api-axum-resource-read`."),
    ("write_scope", "Scope needed to create, change and delete resources. Default: `rust-api-axum-resource-write`."),
    ("username_claim", "Claim holding the name to show. Default: `preferred_username`, then `username`, then `sub`."),
    (
        "introspection_cache_secs",
        "How long a positive introspection answer is trusted (bounded by the token's `exp`). Default: 60.",
    ),
    (
        "jwks_refresh_secs",
        "How often the signing keys are fetched again in the background, so a key the provider removed stops \
         verifying (and evicts the tokens it verified); a shorter `Cache-Control: max-age` on the JWKS wins. \
         Default: 300.",
    ),
    (
        "max_token_lifetime_secs",
        "Longest lifetime (`exp - iat`, or `exp - now` without `iat`) of an accepted JWT; an `iat` in the future \
         beyond the 30 s leeway is refused too. Default: 86400.",
    ),
    (
        "introspection_requires_audience",
        "Whether an introspection answer must name one of our audiences; `false` only for a provider that never \
         sends `aud`. Default: `true`.",
    ),
    (
        "jwt_types",
        "Accepted JWT `typ` header values (case-insensitive, `application/` ignored); `\"\"` admits a token \
         without `typ`. Tokens carrying `nonce`, `at_hash` or `c_hash` (ID tokens) are refused whatever their \
         type. Default: `[\"at+jwt\", \"JWT\"]`.",
    ),
    (
        "allow_insecure_http",
        "Allow plain `http://` provider URLs off loopback (the client secret and tokens then travel in clear \
         text). Default: `false`.",
    ),
    (
        "provider_timeout_secs",
        "Longest wait for one call to the provider (discovery, JWKS, introspection). Default: 5.",
    ),
    (
        "provider_max_in_flight",
        "Calls to the provider in flight at once, at most; a request that would be one more waits 250 ms for a \
         place, then gets a 503. Default: 16.",
    ),
    (
        "ecdsa_low_s_only",
        "Refuse ES256/ES384 signatures whose S is in the upper half of the curve order (the malleable twin of a \
         low-S one). Off by default because OpenSSL- and Java-based providers sign with a high S about half the \
         time; turn it on for a provider that normalises. Default: `false`.",
    ),
];

/// One string or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// A list.
    Many(Vec<String>),
}

/// Declares [`Keys`] with each key's documentation once: as the field's rustdoc and in [`KEY_DOCS`], which the
/// configuration reference (`rust-api-axum config --reference`, `docs/configuration.md`) is written from.
macro_rules! keys {
    ($($(#[$attr:meta])* $key:ident: $type:ty => $doc:literal,)*) => {
        /// The configuration as users write it: every key flat, in the order the error for an unknown key lists
        /// them. Loading fills this, then [`Config`] is made from it; serialising goes the other way (the defaults
        /// layer), where the keys that can hold a secret are skipped.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Keys {
            $(#[doc = $doc] $(#[$attr])* $key: $type,)*
        }

        /// Every field of [`Keys`] with its documentation, in order.
        const KEY_DOCS: &[(&str, &str)] = &[$((stringify!($key), $doc)),*];
    };
}

keys! {
    host: String => "Interface to bind to; `0.0.0.0` to accept connections from other hosts (in a container).",
    port: u16 => "TCP port to bind to; `0` picks a free one.",
    instance_path: PathBuf => "Directory for the server's own files (the default SQLite database); created when missing.",
    #[serde(skip_serializing)]
    db_url: Option<SecretString> => "Database URL (`sqlite://`, `postgres://`, `mysql://`, `mariadb://`), which may carry a \
        password; none means `rust-api-axum.sqlite` in the instance path.",
    db_schema: Option<DbSchema> => "PostgreSQL schema to work in (set as `search_path`), for a role whose tables live in \
        its own schema; a plain identifier (a letter or `_`, then letters, digits or `_`, at most 63), else the server \
        refuses to start.",
    db_max_connections: u32 => "Largest number of pooled database connections (on PostgreSQL, direct reads use 4 more).",
    auto_migrate: bool => "Bring the schema up to date at start; `false` is the production mode (`--no-migrate`), which \
        never changes the schema and refuses to start while it is behind.",
    db_reads: ReadEngine => "How the hot reads run: `direct` (rusqlite on the calling thread for a SQLite file, pipelined \
        tokio-postgres for PostgreSQL, the pool elsewhere) or `pool` (SeaORM's pool, like every write).",
    idempotency_retention_secs: u64 => "Seconds a create's `Idempotency-Key` and the answer it earned are kept, so a retry \
        within them is answered again instead of creating twice; expired keys are removed in the background.",
    oidc_client_secrets: Option<PathBuf> => "Path to a Flask-OIDC style `client_secrets.json`; without it (or `web`) the \
        server runs without authentication and every protected route is closed.",
    #[serde(rename = "OIDC_CLIENT_SECRETS", default, skip_serializing)]
    original_oidc_client_secrets: Option<PathBuf> => "The original's spelling of `oidc_client_secrets` in its configuration \
        file; counts only where `oidc_client_secrets` is not set.",
    #[serde(default, skip_serializing, deserialize_with = "json_text")]
    web: Option<SecretString> => "The original's embedded form: the `web` entry of `client_secrets.json` (client id and \
        secret, issuer, endpoints) inside this configuration.",
    oidc: Option<OidcExtras> => "Our optional OIDC settings, overriding those in `web` (members below); a misspelt member \
        is refused. Nested keys also come from variables: `APP_CONFIG_OIDC__AUDIENCE`.",
    #[serde(default, skip_serializing)]
    #[expect(dead_code, reason = "read only to accept the key; nothing of it is used or kept")]
    client: Option<IgnoredAny> => "The original's test-client section; accepted so its configuration files load, and \
        otherwise ignored: its content (which may hold the test client's secret) is not even kept.",
    ca_cert: Option<PathBuf> => "PEM bundle of extra CA certificates trusted for every call to the OpenID provider and \
        the trace collector.",
    log_format: LogFormat => "Shape of the log lines: `text` (the Flask original's) or `json` (one object per line).",
    debug: bool => "Log at debug level instead of info (`RUST_LOG` overrides both).",
    access_log: bool => "Write one access-log line per request.",
    request_timeout_secs: u64 => "Longest time a request may take before it is answered with a 503 problem.",
    shutdown_grace_secs: u64 => "Longest time in-flight requests get to finish after SIGINT/SIGTERM before the server \
        exits anyway.",
    max_body_bytes: usize => "Largest request body accepted; larger ones get a 413 problem.",
    header_read_timeout_secs: u64 => "A client that has not sent a whole request head this long after connecting (or \
        after its previous response) is disconnected (slowloris); 1 to 86400.",
    max_request_head_bytes: usize => "Largest request head accepted: over HTTP/1 exactly this many bytes of request line, \
        headers and the blank line after them, and one byte more gets a 431 answer; over HTTP/2 the decoded header \
        list as RFC 7541 counts it (32 bytes more per field).",
    max_connections: usize => "Connections served at once; beyond it new ones wait in the listen queue (each open \
        connection costs about 12 KiB).",
    shutdown_drain_secs: u64 => "After SIGTERM, `/readyz` answers 503 for this long while requests are still served, so \
        load balancers stop sending before the listener closes.",
    metrics_enabled: bool => "Serve Prometheus metrics at `/metrics`.",
    metrics_port: Option<u16> => "Serve `/metrics` on this port of `host` only, instead of on the main listener, so an \
        ingress for the API never exposes it.",
    otel_endpoint: Option<String> => "OTLP/HTTP collector base URL (`http://collector:4318`); spans go to \
        `{otel_endpoint}/v1/traces`. None switches tracing off, at no cost per request.",
    otel_service_name: String => "`service.name` of the exported spans, so one collector can tell deployments apart.",
    rate_limit_per_second: Option<NonZeroU32> => "Requests a second each caller (token subject, else client address) may \
        make; none switches rate limits off.",
    rate_limit_burst: Option<NonZeroU32> => "Requests a caller may make at once before the rate applies; none is one \
        second's worth.",
    cors_allowed_origins: Vec<String> => "Origins whose browser pages may call the API (`https://app.example.com`), or \
        `[\"*\"]`; empty: no CORS.",
    cors_allow_credentials: bool => "Tell browsers they may send cookies and HTTP authentication cross-origin; never \
        together with `*`.",
    trusted_proxies: Vec<String> => "Proxies (addresses or networks) whose forwarding header names the client; empty \
        trusts none.",
    forwarded_header: ForwardedHeader => "The one forwarding header the trusted proxies write: `x-forwarded-for` or \
        `forwarded` (RFC 7239).",
    require_if_match: bool => "Refuse a `PUT` or `DELETE` of a resource that has no `If-Match` header with a 428 \
        problem, so that no client overwrites a change it has not seen; when `false`, such a write replaces whatever \
        version is current.",
}

/// Which flat key belongs to which section: the one list both directions (loading, and the defaults layer) are
/// made from. A new key is a field of [`Keys`], a field of its section, and its name here.
macro_rules! sections {
    ($($section:ident: $settings:ident { $($key:ident),* $(,)? }),* $(,)?) => {
        /// The sections in order, each with its keys.
        const SECTIONS: &[(&str, &[&str])] = &[$((stringify!($section), &[$(stringify!($key)),*])),*];

        impl Keys {
            fn into_config(self) -> Config {
                Config { $($section: $settings { $($key: self.$key),* }),* }
            }

            fn from_config(config: Config) -> Self {
                let Config { $($section),* } = config;
                Self { $($($key: $section.$key,)*)* original_oidc_client_secrets: None, client: None }
            }
        }
    };
}

sections! {
    server: ServerSettings { host, port, shutdown_grace_secs, shutdown_drain_secs },
    limits: LimitSettings {
        request_timeout_secs, max_body_bytes, header_read_timeout_secs, max_request_head_bytes, max_connections,
    },
    guards: GuardSettings {
        rate_limit_per_second, rate_limit_burst, cors_allowed_origins, cors_allow_credentials, trusted_proxies,
        forwarded_header,
    },
    observability: ObservabilitySettings {
        log_format, debug, access_log, metrics_enabled, metrics_port, otel_endpoint, otel_service_name,
    },
    database: DatabaseSettings { instance_path, db_url, db_schema, db_max_connections, auto_migrate, db_reads, idempotency_retention_secs },
    auth: AuthSettings { oidc_client_secrets, web, oidc, ca_cert },
    api: ApiSettings { require_if_match },
}

impl From<Keys> for Config {
    fn from(mut keys: Keys) -> Self {
        // The original's key counts only where ours is not set.
        keys.oidc_client_secrets = keys.oidc_client_secrets.take().or(keys.original_oidc_client_secrets.take());
        keys.into_config()
    }
}

impl From<Config> for Keys {
    fn from(config: Config) -> Self {
        Self::from_config(config)
    }
}

/// Any JSON value, kept as its text in a [`SecretString`]: the `web` entry as a configuration layer gives it.
fn json_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.as_ref().map(secret_json))
}

/// `value`'s JSON text as a secret: how `web` is set from code (tests, tools).
pub fn secret_json(value: &serde_json::Value) -> SecretString {
    SecretString::from(value.to_string())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            limits: LimitSettings::default(),
            guards: GuardSettings::default(),
            observability: ObservabilitySettings::for_service(crate::SERVICE.name),
            database: DatabaseSettings::default(),
            auth: AuthSettings::default(),
            api: ApiSettings::default(),
        }
    }
}

/// A loaded configuration and where its keys came from.
#[derive(Debug)]
pub struct Loaded {
    /// The merged configuration.
    pub config: Config,
    /// Each key a file, a variable or a flag set, with that layer (`variable APP_CONFIG_PORT`), in key order.
    pub sources: Vec<(String, String)>,
}

/// Why the configuration could not be built; the binary exits with code 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `APP_CONFIG` names a file that is not there: a typo must not silently fall back to defaults.
    #[error("configuration file {} (named by {CONFIG_FILE_ENV}) cannot be read: {source}", path.display())]
    UnreadableFile {
        /// The file `APP_CONFIG` named.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A layer holds malformed JSON, an unknown key or a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Each key a flag sets, and the flag (`FlagOverrides` maps them; a test keeps the two lists equal).
const FLAGS: &[(&str, &str)] = &[
    ("host", "--host"),
    ("port", "--port"),
    ("instance_path", "--instance-path"),
    ("db_url", "--db"),
    ("oidc_client_secrets", "--oidc-secrets"),
    ("ca_cert", "--ca-cert"),
    ("auto_migrate", "--no-migrate (sets false)"),
    ("debug", "-d, --debug (sets true)"),
];

/// The flags that override configuration keys; absent flags leave lower layers alone.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    db_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oidc_client_secrets: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_migrate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<bool>,
}

impl From<&Cli> for FlagOverrides {
    fn from(cli: &Cli) -> Self {
        Self {
            host: cli.host.clone(),
            port: cli.port,
            instance_path: cli.instance_path.clone(),
            db_url: cli.db.clone(),
            oidc_client_secrets: cli.oidc_secrets.clone(),
            ca_cert: cli.ca_cert.clone(),
            // `--no-migrate` can only switch migration off.
            auto_migrate: cli.no_migrate.then_some(false),
            // `-d` can only switch debug on; without it the lower layers decide.
            debug: cli.debug.then_some(true),
        }
    }
}

impl Config {
    /// Merges all layers, reading `APP_CONFIG` and `APP_CONFIG_*` from the process environment.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        Self::load_explained(cli).map(|loaded| loaded.config)
    }

    /// [`Self::load`], also saying which layer set each key that is not at its default (for `doctor`).
    pub fn load_explained(cli: &Cli) -> Result<Loaded, ConfigError> {
        let file = std::env::var_os(CONFIG_FILE_ENV).filter(|path| !path.is_empty()).map(PathBuf::from);
        Self::explained_layers(file.as_deref(), FlagOverrides::from(cli))
    }

    #[cfg(test)]
    fn from_layers(file: Option<&Path>, flags: FlagOverrides) -> Result<Self, ConfigError> {
        Self::explained_layers(file, flags).map(|loaded| loaded.config)
    }

    fn explained_layers(file: Option<&Path>, flags: FlagOverrides) -> Result<Loaded, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            // figment treats a missing file as empty; read it first so a typo in APP_CONFIG is an error.
            std::fs::metadata(path).map_err(|source| ConfigError::UnreadableFile { path: path.to_owned(), source })?;
            figment = figment.merge(Json::file_exact(path));
        }
        let flagged = serde_json::to_value(&flags).unwrap_or_default();
        let figment = figment
            // `__` nests: APP_CONFIG_OIDC__AUDIENCE sets `oidc.audience`.
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .merge(Serialized::defaults(flags));
        let config = figment
            .extract::<Config>()
            .map_err(|error| ConfigError::Invalid(describe(error)))
            .and_then(Self::checked)?;
        let sources = KEY_DOCS
            .iter()
            .filter_map(|(key, _)| {
                let flag = FLAGS.iter().find(|(name, _)| name == key).filter(|(name, _)| flagged.get(name).is_some());
                let source = if let Some((_, flag)) = flag {
                    format!("flag {flag}")
                } else {
                    let metadata = figment.find_metadata(key)?;
                    match &metadata.source {
                        Some(figment::Source::File(path)) => format!("file {}", path.display()),
                        _ if metadata.name.contains("environment") => {
                            format!("variable {ENV_PREFIX}{}", key.to_uppercase())
                        }
                        _ => return None,
                    }
                };
                Some(((*key).replace("original_oidc_client_secrets", "OIDC_CLIENT_SECRETS"), source))
            })
            .collect();
        Ok(Loaded { config, sources })
    }

    /// Refuses values that parse but cannot work: a zero head deadline would close every connection at once, and
    /// zero connections would serve nobody.
    fn checked(self) -> Result<Self, ConfigError> {
        if self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid("max_connections must be at least 1".into()));
        }
        if !(1..=86_400).contains(&self.limits.header_read_timeout_secs) {
            return Err(ConfigError::Invalid(format!(
                "header_read_timeout_secs must be between 1 and 86400 seconds, not {}",
                self.limits.header_read_timeout_secs
            )));
        }
        Ok(self)
    }
}

/// Renders figment's errors as `<what> for key "<key>" in <where>`, naming the exact variable or file.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|error| {
            let key = error
                .path
                .iter()
                .skip_while(|segment| segment.as_str() == "default")
                .map(|segment| segment.to_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            let source = match error.metadata.as_ref() {
                Some(metadata) => match metadata.source.as_ref() {
                    Some(figment::Source::File(path)) => format!("file {}", path.display()),
                    _ if metadata.name.contains("environment") => {
                        format!("environment variable {ENV_PREFIX}{}", key.to_uppercase())
                    }
                    _ => metadata.name.to_string(),
                },
                None => "the merged configuration".to_owned(),
            };
            // figment's own text for an unknown key nests the list of known keys in backticks inside backticks.
            if let figment::error::Kind::UnknownField(field, known) = &error.kind {
                return format!("unknown key \"{field}\" in {source}; the keys are: {}", known.join(", "));
            }
            if key.is_empty() {
                format!("{} in {source}", error.kind)
            } else {
                format!("{} for key \"{key}\" in {source}", error.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's `Jail` closures return its large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;
    use secrecy::ExposeSecret;

    use super::*;

    fn load(jail: &Jail, flags: FlagOverrides) -> Result<Config, ConfigError> {
        let file = std::env::var_os(CONFIG_FILE_ENV).map(|name| jail.directory().join(name));
        Config::from_layers(file.as_deref(), flags)
    }

    #[test]
    fn defaults_apply_without_any_layer() {
        Jail::expect_with(|jail| {
            // Config has no PartialEq (secrets do not compare); its Debug shows every other key.
            assert_eq!(
                format!("{:?}", load(jail, FlagOverrides::default()).expect("loads")),
                format!("{:?}", Config::default())
            );
            Ok(())
        });
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        Jail::expect_with(|jail| {
            jail.create_file("config.json", r#"{"host": "file-host", "port": 1111, "log_format": "json"}"#)?;
            jail.set_env(CONFIG_FILE_ENV, "config.json");
            let from_file = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!((from_file.server.host.as_str(), from_file.server.port), ("file-host", 1111));
            assert_eq!(from_file.observability.log_format, LogFormat::Json);

            jail.set_env("APP_CONFIG_PORT", "2222");
            let from_env = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!((from_env.server.host.as_str(), from_env.server.port), ("file-host", 2222));

            let flags = FlagOverrides { port: Some(3333), ..FlagOverrides::default() };
            let from_flags = load(jail, flags).expect("loads");
            assert_eq!((from_flags.server.host.as_str(), from_flags.server.port), ("file-host", 3333));
            assert_eq!(from_flags.observability.log_format, LogFormat::Json, "untouched keys keep the file's value");
            Ok(())
        });
    }

    #[test]
    fn debug_flag_cannot_switch_off_debug_set_below() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_DEBUG", "true");
            assert!(load(jail, FlagOverrides::from(&cli(&[]))).expect("loads").observability.debug);
            Ok(())
        });
    }

    #[test]
    fn wrong_type_names_the_key_and_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_PORT", "eighty");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.contains("key \"port\""), "{error}");
            assert!(error.contains("APP_CONFIG_PORT"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn malformed_file_names_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("broken.json", "{ not json")?;
            jail.set_env(CONFIG_FILE_ENV, "broken.json");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.contains("broken.json"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_refused_so_typos_surface() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.json", r#"{"prot": 1}"#)?;
            jail.set_env(CONFIG_FILE_ENV, "typo.json");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.starts_with("invalid configuration: unknown key \"prot\" in file "), "{error}");
            assert!(error.contains("; the keys are: host, port, instance_path,"), "{error}");
            assert!(!error.contains('`'), "one plain sentence, no nested quoting: {error}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error_not_a_silent_default() {
        Jail::expect_with(|jail| {
            jail.set_env(CONFIG_FILE_ENV, "absent.json");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail");
            assert!(matches!(error, ConfigError::UnreadableFile { .. }), "{error}");
            Ok(())
        });
    }

    #[test]
    fn original_embedded_oidc_form_loads() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "app.json",
                r#"{"client": {"client_id": "t", "client_secret": "test-client-secret-2e8"},
                    "web": {"client_id": "api", "issuer": "http://idp"},
                    "OIDC_CLIENT_SECRETS": "app.json"}"#,
            )?;
            jail.set_env(CONFIG_FILE_ENV, "app.json");
            let config = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!(config.auth.oidc_client_secrets, Some(PathBuf::from("app.json")));
            assert!(!format!("{config:?}").contains("test-client-secret-2e8"), "the test client is not even kept");
            let web: serde_json::Value =
                serde_json::from_str(config.auth.web.expect("web").expose_secret()).expect("JSON text");
            assert_eq!(web["client_id"], "api");
            Ok(())
        });
    }

    #[test]
    fn nested_oidc_keys_come_from_double_underscore_variables() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_OIDC__AUDIENCE", "my-api");
            let config = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!(config.auth.oidc.expect("oidc").audience, Some(OneOrMany::One("my-api".into())));
            Ok(())
        });
    }

    #[test]
    fn each_key_not_at_its_default_names_the_layer_that_set_it() {
        Jail::expect_with(|jail| {
            jail.create_file("app.json", r#"{"log_format": "json", "port": 1}"#)?;
            jail.set_env(CONFIG_FILE_ENV, "app.json");
            jail.set_env("APP_CONFIG_PORT", "9000");
            let file = jail.directory().join("app.json");
            let flags = FlagOverrides { debug: Some(true), ..FlagOverrides::default() };
            let loaded = Config::explained_layers(Some(&file), flags).expect("loads");
            let source =
                |key: &str| loaded.sources.iter().find(|(name, _)| name == key).map(|(_, source)| source.clone());
            assert_eq!(source("port").as_deref(), Some("variable APP_CONFIG_PORT"), "{:?}", loaded.sources);
            assert_eq!(source("log_format"), Some(format!("file {}", file.display())));
            assert_eq!(source("debug").as_deref(), Some("flag -d, --debug (sets true)"));
            assert_eq!(source("host"), None, "defaults are not listed");
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_oidc_key_is_refused_naming_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_OIDC__AUDEINCE", "my-api");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.contains("unknown key \"audeince\""), "{error}");
            assert!(error.contains("APP_CONFIG_OIDC"), "{error}");
            assert!(error.contains("audience, jwks_uri"), "the keys are listed: {error}");
            Ok(())
        });
    }

    #[test]
    fn the_read_engine_is_direct_unless_pool_is_asked_for() {
        Jail::expect_with(|jail| {
            assert_eq!(load(jail, FlagOverrides::default()).expect("loads").database.db_reads, ReadEngine::Direct);
            jail.set_env("APP_CONFIG_DB_READS", "pool");
            assert_eq!(load(jail, FlagOverrides::default()).expect("loads").database.db_reads, ReadEngine::Pool);
            jail.set_env("APP_CONFIG_DB_READS", "fast");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.contains("db_reads"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_head_deadline_of_zero_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_HEADER_READ_TIMEOUT_SECS", "0");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.contains("header_read_timeout_secs"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_db_schema_that_is_not_a_plain_identifier_is_refused_naming_the_key() {
        for schema in ["app; DROP TABLE resources", "a,b", "x\"y", "a-b", "1st", "", &"s".repeat(64), "schéma"] {
            Jail::expect_with(|jail| {
                jail.set_env("APP_CONFIG_DB_SCHEMA", schema);
                let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
                assert!(error.contains("key \"db_schema\"") && error.contains("APP_CONFIG_DB_SCHEMA"), "{error}");
                assert!(!error.contains('\n'), "one line: {error}");
                Ok(())
            });
        }
        for schema in ["app", "_x", "App_2", &"s".repeat(63)] {
            Jail::expect_with(|jail| {
                jail.set_env("APP_CONFIG_DB_SCHEMA", schema);
                let config = load(jail, FlagOverrides::default()).expect("a plain identifier");
                assert_eq!(config.database.db_schema.as_deref(), Some(schema));
                Ok(())
            });
        }
    }

    #[test]
    fn unknown_log_format_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_LOG_FORMAT", "xml");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.contains("log_format"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn guard_lists_and_rates_come_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_CORS_ALLOWED_ORIGINS", "[https://a.example.com, \"http://localhost:3000\"]");
            jail.set_env("APP_CONFIG_TRUSTED_PROXIES", "[10.0.0.0/8, \"::1\"]");
            jail.set_env("APP_CONFIG_RATE_LIMIT_PER_SECOND", "20");
            let config = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!(config.guards.cors_allowed_origins, ["https://a.example.com", "http://localhost:3000"]);
            assert_eq!(config.guards.trusted_proxies, ["10.0.0.0/8", "::1"]);
            assert_eq!(config.guards.rate_limit_per_second, NonZeroU32::new(20));
            assert_eq!(config.guards.rate_limit_burst, None);
            Ok(())
        });
    }

    #[test]
    fn a_zero_rate_is_refused_rather_than_read_as_off() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_RATE_LIMIT_PER_SECOND", "0");
            let error = load(jail, FlagOverrides::default()).expect_err("must fail").to_string();
            assert!(error.contains("rate_limit_per_second"), "{error}");
            Ok(())
        });
    }

    fn cli(args: &[&str]) -> Cli {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("rust-api-axum").chain(args.iter().copied())).expect("parses")
    }

    #[test]
    fn flags_map_onto_their_keys() {
        let flags = FlagOverrides::from(&cli(&["--db", "sqlite::memory:", "--oidc-secrets", "s.json", "-d"]));
        assert_eq!(flags.db_url.as_deref(), Some("sqlite::memory:"));
        assert_eq!(flags.oidc_client_secrets, Some(PathBuf::from("s.json")));
        assert_eq!(flags.debug, Some(true));
    }
}

//! Layered configuration (12-factor): built-in defaults < the JSON file named by `APP_CONFIG` < `APP_CONFIG_<KEY>`
//! environment variables < command-line flags. Every key is documented in the README's configuration table. Each
//! subsystem is handed its own section of the result, never the whole.

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
    pub db_schema: Option<String>,
    /// Largest number of pooled database connections.
    pub db_max_connections: u32,
    /// Bring the schema up to date at start (the CLI default); `false` is the production mode, which never
    /// changes the schema and refuses to start while it is behind.
    pub auto_migrate: bool,
    /// How the hot reads run: `direct` (the fastest driver per engine, see `db/reads`) or `pool` (SeaORM's pool,
    /// like every write).
    pub db_reads: ReadEngine,
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
        }
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
        } = overrides;
        self.audience = audience.or(self.audience.take());
        self.jwks_uri = jwks_uri.or(self.jwks_uri.take());
        self.docs_client_id = docs_client_id.or(self.docs_client_id.take());
        self.read_scope = read_scope.or(self.read_scope.take());
        self.write_scope = write_scope.or(self.write_scope.take());
        self.username_claim = username_claim.or(self.username_claim.take());
        self.introspection_cache_secs = introspection_cache_secs.or(self.introspection_cache_secs);
    }
}

/// One string or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// A list.
    Many(Vec<String>),
}

/// The configuration as users write it: every key flat, in the order the error for an unknown key lists them.
/// Loading fills this, then [`Config`] is made from it; serialising goes the other way (the defaults layer), where
/// the keys that can hold a secret are skipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    host: String,
    port: u16,
    instance_path: PathBuf,
    #[serde(skip_serializing)]
    db_url: Option<SecretString>,
    db_schema: Option<String>,
    db_max_connections: u32,
    auto_migrate: bool,
    db_reads: ReadEngine,
    oidc_client_secrets: Option<PathBuf>,
    /// The original's spelling of `oidc_client_secrets` in its configuration file; folded into it.
    #[serde(rename = "OIDC_CLIENT_SECRETS", default, skip_serializing)]
    original_oidc_client_secrets: Option<PathBuf>,
    #[serde(default, skip_serializing, deserialize_with = "json_text")]
    web: Option<SecretString>,
    oidc: Option<OidcExtras>,
    /// The original's test-client section; accepted so its configuration files load, and otherwise ignored: its
    /// content (which may hold the test client's secret) is not even kept.
    #[serde(default, skip_serializing)]
    #[expect(dead_code, reason = "read only to accept the key; nothing of it is used or kept")]
    client: Option<IgnoredAny>,
    ca_cert: Option<PathBuf>,
    log_format: LogFormat,
    debug: bool,
    access_log: bool,
    request_timeout_secs: u64,
    shutdown_grace_secs: u64,
    max_body_bytes: usize,
    header_read_timeout_secs: u64,
    max_request_head_bytes: usize,
    max_connections: usize,
    shutdown_drain_secs: u64,
    metrics_enabled: bool,
    metrics_port: Option<u16>,
    otel_endpoint: Option<String>,
    otel_service_name: String,
    rate_limit_per_second: Option<NonZeroU32>,
    rate_limit_burst: Option<NonZeroU32>,
    cors_allowed_origins: Vec<String>,
    cors_allow_credentials: bool,
    trusted_proxies: Vec<String>,
    forwarded_header: ForwardedHeader,
}

/// Which flat key belongs to which section: the one list both directions (loading, and the defaults layer) are
/// made from. A new key is a field of [`Keys`], a field of its section, and its name here.
macro_rules! sections {
    ($($section:ident: $settings:ident { $($key:ident),* $(,)? }),* $(,)?) => {
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
    database: DatabaseSettings { instance_path, db_url, db_schema, db_max_connections, auto_migrate, db_reads },
    auth: AuthSettings { oidc_client_secrets, web, oidc, ca_cert },
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
        }
    }
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

/// The flags that override configuration keys; absent flags leave lower layers alone.
#[derive(Debug, Default, Serialize)]
struct FlagOverrides {
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
        let file = std::env::var_os(CONFIG_FILE_ENV).filter(|path| !path.is_empty()).map(PathBuf::from);
        Self::from_layers(file.as_deref(), FlagOverrides::from(cli))
    }

    fn from_layers(file: Option<&Path>, flags: FlagOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            // figment treats a missing file as empty; read it first so a typo in APP_CONFIG is an error.
            std::fs::metadata(path).map_err(|source| ConfigError::UnreadableFile { path: path.to_owned(), source })?;
            figment = figment.merge(Json::file_exact(path));
        }
        figment
            // `__` nests: APP_CONFIG_OIDC__AUDIENCE sets `oidc.audience`.
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .merge(Serialized::defaults(flags))
            .extract::<Config>()
            .map_err(|error| ConfigError::Invalid(describe(error)))
            .and_then(Self::checked)
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

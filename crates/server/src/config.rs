//! Layered configuration (12-factor): built-in defaults < the JSON file named by `APP_CONFIG` < `APP_CONFIG_<KEY>`
//! environment variables < command-line flags. Every key is documented in the README's configuration table.

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

use crate::cli::Cli;

/// Environment variable naming the JSON configuration file (the Flask original's `FLASK_CONFIG`).
pub const CONFIG_FILE_ENV: &str = "APP_CONFIG";
/// Prefix of the environment variables that set single keys, e.g. `APP_CONFIG_PORT=9000`.
pub const ENV_PREFIX: &str = "APP_CONFIG_";

/// The server's whole configuration, after all layers are merged. The keys that can hold a secret are
/// [`SecretString`]s, so `{:?}` of the configuration (or of anything holding it) never shows one; they are not
/// serialised either (the only serialisation is of the defaults, where they are empty).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Interface to bind to; `0.0.0.0` to accept connections from other hosts (in a container).
    pub host: String,
    /// TCP port to bind to; `0` picks a free one (the tests use it).
    pub port: u16,
    /// Directory for the server's own files (the default SQLite database); created when missing.
    pub instance_path: PathBuf,
    /// Database URI (`sqlite://`, `postgres://`, `mysql://`), which may carry a password; `None` means
    /// `rust-api-axum.sqlite` in the instance path.
    #[serde(skip_serializing)]
    pub db_url: Option<SecretString>,
    /// PostgreSQL schema to work in (set as `search_path`), for a role whose tables live in its own schema.
    pub db_schema: Option<String>,
    /// Largest number of pooled database connections.
    pub db_max_connections: u32,
    /// Bring the schema up to date at start (the CLI default); `false` is the production mode, which never
    /// changes the schema and refuses to start while it is behind.
    pub auto_migrate: bool,
    /// Path to a Flask-OIDC style `client_secrets.json`; `None` runs without authentication unless `web` is
    /// given here.
    pub oidc_client_secrets: Option<PathBuf>,
    /// The original's spelling of `oidc_client_secrets` in its configuration file; folded into it after loading.
    #[serde(rename = "OIDC_CLIENT_SECRETS", default, skip_serializing)]
    pub original_oidc_client_secrets: Option<PathBuf>,
    /// The original's embedded form: the `web` entry of `client_secrets.json` inside this configuration, kept as
    /// its JSON text because it holds the client secret; `OidcSettings` reads it.
    #[serde(default, skip_serializing, deserialize_with = "json_text")]
    pub web: Option<SecretString>,
    /// Extra OIDC settings (audience, jwks_uri, scope names, username claim) that override those in `web`.
    pub oidc: Option<serde_json::Value>,
    /// The original's test-client section; accepted so its configuration files load, and otherwise ignored: its
    /// content (which may hold the test client's secret) is not even kept.
    #[serde(default, skip_serializing)]
    pub client: Option<IgnoredAny>,
    /// PEM bundle of extra CA certificates trusted for every call to the OpenID provider.
    pub ca_cert: Option<PathBuf>,
    /// Shape of the log lines.
    pub log_format: LogFormat,
    /// Log at debug level instead of info.
    pub debug: bool,
    /// Write one access-log line per request.
    pub access_log: bool,
    /// Longest time a request may take before it is answered with a 503 problem.
    pub request_timeout_secs: u64,
    /// Longest time in-flight requests get to finish after SIGINT/SIGTERM before the server exits anyway.
    pub shutdown_grace_secs: u64,
    /// Largest request body accepted; larger ones get a 413 problem.
    pub max_body_bytes: usize,
    /// A client that has not sent a whole request head this long after connecting (or after its previous
    /// response) is disconnected, so slow clients (slowloris) cannot hold connections open.
    pub header_read_timeout_secs: u64,
    /// Largest request head (request line and headers) accepted; larger ones get a 431 answer.
    pub max_request_head_bytes: usize,
    /// Connections served at once; beyond it, new ones wait in the listen queue until one closes, so a flood of
    /// connections cannot push the process past its memory limit (each open connection costs about 12 KiB).
    pub max_connections: usize,
    /// After SIGTERM, `/readyz` answers 503 for this long while requests are still served, so load balancers stop
    /// sending before the listener closes.
    pub shutdown_drain_secs: u64,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics_enabled: bool,
    /// Serve `/metrics` on this port of `host` only, instead of on the main listener, so an ingress for the API
    /// never exposes it.
    pub metrics_port: Option<u16>,
    /// OTLP/HTTP collector base URL (`http://collector:4318`); spans go to `{otel_endpoint}/v1/traces`. `None`
    /// switches tracing off, at no cost per request.
    pub otel_endpoint: Option<String>,
    /// `service.name` of the exported spans, so one collector can tell deployments apart.
    pub otel_service_name: String,
    /// Requests a second each caller (token subject, else client address) may make; `None` switches limits off.
    pub rate_limit_per_second: Option<NonZeroU32>,
    /// Requests a caller may make at once before the rate applies; `None` is one second's worth.
    pub rate_limit_burst: Option<NonZeroU32>,
    /// Origins whose browser pages may call the API (`https://app.example.com`), or `["*"]`; empty: no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Tell browsers they may send cookies and HTTP authentication cross-origin; never together with `*`.
    pub cors_allow_credentials: bool,
    /// Proxies (addresses or networks) whose `Forwarded`/`X-Forwarded-For` name the client; empty trusts none.
    pub trusted_proxies: Vec<String>,
    /// The one forwarding header the trusted proxies write; the other is ignored, since a proxy passes on
    /// whatever a client put in the header it does not write itself.
    pub forwarded_header: ForwardedHeader,
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

/// Which header names the client behind a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, written by nginx, HAProxy, Envoy and cloud load balancers.
    XForwardedFor,
    /// `Forwarded` (RFC 7239), for proxies configured to write it.
    Forwarded,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[2026-11-29 15:30:18,005] INFO: message`, the Flask original's shape, for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 8080,
            instance_path: PathBuf::from("var/instance"),
            db_url: None,
            db_schema: None,
            db_max_connections: 10,
            auto_migrate: true,
            oidc_client_secrets: None,
            original_oidc_client_secrets: None,
            web: None,
            oidc: None,
            client: None,
            ca_cert: None,
            log_format: LogFormat::Text,
            debug: false,
            access_log: true,
            request_timeout_secs: 30,
            shutdown_grace_secs: 25,
            max_body_bytes: 1024 * 1024,
            header_read_timeout_secs: 10,
            max_request_head_bytes: 32 * 1024,
            max_connections: 10_000,
            shutdown_drain_secs: 0,
            metrics_enabled: true,
            metrics_port: None,
            otel_endpoint: None,
            otel_service_name: "rust-api-axum".into(),
            rate_limit_per_second: None,
            rate_limit_burst: None,
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
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
            .map(|mut config| {
                // The original's key counts only where ours is not set.
                config.oidc_client_secrets =
                    config.oidc_client_secrets.take().or(config.original_oidc_client_secrets.take());
                config
            })
            .map_err(|error| ConfigError::Invalid(describe(error)))
            .and_then(Self::checked)
    }

    /// Refuses values that parse but cannot work: a zero head deadline would close every connection at once, and
    /// zero connections would serve nobody.
    fn checked(self) -> Result<Self, ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid("max_connections must be at least 1".into()));
        }
        if !(1..=86_400).contains(&self.header_read_timeout_secs) {
            return Err(ConfigError::Invalid(format!(
                "header_read_timeout_secs must be between 1 and 86400 seconds, not {}",
                self.header_read_timeout_secs
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
            assert_eq!((from_file.host.as_str(), from_file.port), ("file-host", 1111));
            assert_eq!(from_file.log_format, LogFormat::Json);

            jail.set_env("APP_CONFIG_PORT", "2222");
            let from_env = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!((from_env.host.as_str(), from_env.port), ("file-host", 2222));

            let flags = FlagOverrides { port: Some(3333), ..FlagOverrides::default() };
            let from_flags = load(jail, flags).expect("loads");
            assert_eq!((from_flags.host.as_str(), from_flags.port), ("file-host", 3333));
            assert_eq!(from_flags.log_format, LogFormat::Json, "untouched keys keep the file's value");
            Ok(())
        });
    }

    #[test]
    fn debug_flag_cannot_switch_off_debug_set_below() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_DEBUG", "true");
            assert!(load(jail, FlagOverrides::from(&cli(&[]))).expect("loads").debug);
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
                r#"{"client": {"client_id": "t"}, "web": {"client_id": "api", "issuer": "http://idp"},
                    "OIDC_CLIENT_SECRETS": "app.json"}"#,
            )?;
            jail.set_env(CONFIG_FILE_ENV, "app.json");
            let config = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!(config.oidc_client_secrets, Some(PathBuf::from("app.json")));
            let web: serde_json::Value =
                serde_json::from_str(config.web.expect("web").expose_secret()).expect("JSON text");
            assert_eq!(web["client_id"], "api");
            Ok(())
        });
    }

    #[test]
    fn nested_oidc_keys_come_from_double_underscore_variables() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_CONFIG_OIDC__AUDIENCE", "my-api");
            let config = load(jail, FlagOverrides::default()).expect("loads");
            assert_eq!(config.oidc.expect("oidc")["audience"], "my-api");
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
            assert_eq!(config.cors_allowed_origins, ["https://a.example.com", "http://localhost:3000"]);
            assert_eq!(config.trusted_proxies, ["10.0.0.0/8", "::1"]);
            assert_eq!(config.rate_limit_per_second, NonZeroU32::new(20));
            assert_eq!(config.rate_limit_burst, None);
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

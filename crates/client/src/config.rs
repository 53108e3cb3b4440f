//! The client's settings: the JSON configuration file (the original's format), overridden by command-line flags,
//! checked once so every later step can rely on them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::{Host, Url};

use secrecy::ExposeSecret;

use crate::{auth::oauth::Secret, cli::Cli};

/// Scopes requested when neither `--scope` nor `scopes` says otherwise: an ID token with the user's name, a
/// refresh token (`offline_access`), and both of the API's resource scopes.
pub const DEFAULT_SCOPES: [&str; 5] =
    ["openid", "profile", "offline_access", api_types::scope::READ, api_types::scope::WRITE];

/// Name of the per-user directory (under the config and cache directories) and of the original's config file.
const APP_DIR: &str = "rust-api-axum-client";

/// The configuration file, as written by a person; every key is optional because flags may supply it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    discovery_url: Option<String>,
    api_url: Option<String>,
    scopes: Option<Scopes>,
    ca_cert: Option<PathBuf>,
}

/// `scopes` may be written as one space-separated string (as OAuth sends it) or as a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scopes {
    Text(String),
    List(Vec<String>),
}

/// Why the settings cannot be used; the binary exits with code 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A named (or found) configuration file cannot be read.
    #[error("configuration file {} cannot be read: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON, has an unknown key (a typo must not be ignored) or a value of the wrong type.
    #[error("configuration file {} is invalid: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// serde's description, which names the key and the position.
        reason: String,
    },
    /// A value the command needs is neither on the command line nor in the file.
    #[error("no {what} configured: pass {flag} or set \"{key}\" in the configuration file")]
    Missing {
        /// What the value is, for people.
        what: &'static str,
        /// The flag that sets it.
        flag: &'static str,
        /// The configuration key that sets it.
        key: &'static str,
    },
    /// A URL setting is not an absolute http(s) URL.
    #[error("{flag} (\"{key}\"): {value:?} is not an http(s) URL: {reason}")]
    InvalidUrl {
        /// The flag that sets it.
        flag: &'static str,
        /// The configuration key that sets it.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither `XDG_CACHE_HOME` nor `HOME` says where the user's cache is, so tokens cannot be kept.
    #[error("cannot find the user's cache directory for the token cache: set HOME or XDG_CACHE_HOME")]
    NoCacheDirectory,
}

/// Everything a command needs to know, after merging the file and the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The OAuth client id of this CLI.
    pub client_id: String,
    /// Only confidential clients have one; public clients (the usual case for a CLI, e.g. Azure AD) do not.
    pub client_secret: Option<Secret>,
    /// The full URL of the provider's metadata document.
    pub discovery_url: Url,
    /// Base URL of the API (always ending in `/`), when configured; only API commands need it.
    api_url: Option<Url>,
    /// Scopes to request at login.
    pub scopes: Vec<String>,
    /// Extra CA certificates to trust.
    pub ca_cert: Option<PathBuf>,
    /// Where the token cache lives.
    pub cache_dir: PathBuf,
}

/// The per-user locations the defaults come from; a parameter so tests never look at the real home directory.
#[derive(Debug, Clone, Default)]
pub struct UserDirs {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME` or its platform default.
    pub config: Option<PathBuf>,
    /// `$XDG_CACHE_HOME` or its platform default.
    pub cache: Option<PathBuf>,
}

impl UserDirs {
    /// The current user's directories.
    pub fn current() -> Self {
        Self { home: dirs::home_dir(), config: dirs::config_dir(), cache: dirs::cache_dir() }
    }
}

impl Settings {
    /// Reads the configuration file (the one named by `--config`, or the first default that exists) and applies
    /// the flags over it.
    pub fn load(cli: &Cli, dirs: &UserDirs) -> Result<Self, ConfigError> {
        let path = match &cli.config {
            Some(path) => Some(path.clone()),
            None => default_config_file(dirs),
        };
        let file = match &path {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        // A relative `ca_cert` in a file means relative to that file, not to wherever the user happens to be.
        let file_ca_cert = file.ca_cert.map(|ca| match path.as_deref().and_then(Path::parent) {
            Some(dir) if ca.is_relative() => dir.join(ca),
            _ => ca,
        });

        let client_id = non_empty(cli.client_id.clone().or(file.client_id)).ok_or(ConfigError::Missing {
            what: "OAuth client id",
            flag: "--client-id",
            key: "client_id",
        })?;
        let client_secret = cli
            .client_secret
            .clone()
            .or(file.client_secret)
            .map(|secret| secret.expose_secret().trim().to_owned())
            .filter(|secret| !secret.is_empty())
            .map(Secret::from);
        let discovery = non_empty(cli.discovery_url.clone().or(file.discovery_url)).ok_or(ConfigError::Missing {
            what: "OpenID discovery URL",
            flag: "--discovery-url",
            key: "discovery_url",
        })?;
        let discovery_url = discovery_document_url(&discovery).map_err(|reason| ConfigError::InvalidUrl {
            flag: "--discovery-url",
            key: "discovery_url",
            value: discovery.clone(),
            reason,
        })?;
        let api_url = non_empty(cli.api_url.clone().or(file.api_url))
            .map(|value| {
                api_base_url(&value).map_err(|reason| ConfigError::InvalidUrl {
                    flag: "--api-url",
                    key: "api_url",
                    value: value.clone(),
                    reason,
                })
            })
            .transpose()?;
        let scopes = match (cli.scope.as_deref(), file.scopes) {
            (Some(text), _) => split_scopes(text),
            (None, Some(Scopes::Text(text))) => split_scopes(&text),
            (None, Some(Scopes::List(list))) => list.into_iter().flat_map(|s| split_scopes(&s)).collect(),
            (None, None) => Vec::new(),
        };
        let scopes = if scopes.is_empty() { DEFAULT_SCOPES.map(str::to_owned).to_vec() } else { scopes };
        let cache_dir = dirs.cache.clone().ok_or(ConfigError::NoCacheDirectory)?.join(APP_DIR);

        Ok(Self {
            client_id,
            client_secret,
            discovery_url,
            api_url,
            scopes,
            ca_cert: cli.ca_cert.clone().or(file_ca_cert),
            cache_dir,
        })
    }

    /// One warning line per configured URL that would carry tokens in clear text ([`cleartext_warning`]).
    pub fn cleartext_warnings(&self) -> Vec<String> {
        let urls = [("--discovery-url", Some(&self.discovery_url)), ("--api-url", self.api_url.as_ref())];
        urls.into_iter().filter_map(|(what, url)| url.and_then(|url| cleartext_warning(what, url))).collect()
    }

    /// The API's base URL, or the error naming the flag and key that set it.
    pub fn api_url(&self) -> Result<&Url, ConfigError> {
        self.api_url.as_ref().ok_or(ConfigError::Missing { what: "API URL", flag: "--api-url", key: "api_url" })
    }
}

/// The original's `~/etc/rust-api-axum-client.json` when it exists, else the XDG location when that exists.
fn default_config_file(dirs: &UserDirs) -> Option<PathBuf> {
    let original = dirs.home.as_ref().map(|home| home.join("etc").join(format!("{APP_DIR}.json")));
    let xdg = dirs.config.as_ref().map(|config| config.join(APP_DIR).join("config.json"));
    [original, xdg].into_iter().flatten().find(|path| path.is_file())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable { path: path.to_owned(), source })?;
    serde_json::from_str(&text)
        .map_err(|error| ConfigError::Malformed { path: path.to_owned(), reason: error.to_string() })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn split_scopes(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|error| error.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("only http:// and https:// URLs with a host are supported".to_owned());
    }
    Ok(url)
}

/// The warning for `url` (set by the flag `what`) when it is plain `http://` to another machine, where tokens and
/// data would cross the network readable by anyone on the way. `http://` to the loopback (a local server, a test
/// provider, a tunnel's local end) never leaves the machine and is not warned about.
pub fn cleartext_warning(what: &str, url: &Url) -> Option<String> {
    if url.scheme() != "http" || is_loopback(url) {
        return None;
    }
    Some(format!("{what} {url} is plain http:// to another host: tokens and data cross the network unencrypted"))
}

/// Whether `url` names this machine: `localhost` and its subdomains (RFC 6761), 127.0.0.0/8, `::1`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}

/// Suffixes that mark a value as the metadata document itself rather than an issuer.
const WELL_KNOWN: [&str; 2] = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"];

/// Accepts the full metadata URL (used as given) or an issuer URL, to which the OpenID Connect Discovery path is
/// appended, so both styles of provider documentation can be pasted as they are.
pub fn discovery_document_url(value: &str) -> Result<Url, String> {
    let mut url = http_url(value)?;
    if !WELL_KNOWN.iter().any(|suffix| url.path().ends_with(suffix)) {
        let path = format!("{}/.well-known/openid-configuration", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

/// The API's base URL with a trailing `/`, so API paths join below it even behind a path prefix.
fn api_base_url(value: &str) -> Result<Url, String> {
    let mut url = http_url(value)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the API URL must not have a query or a fragment".to_owned());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;
    use tempfile::TempDir;

    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("rust-api-axum-client").chain(args.iter().copied())).expect("parses")
    }

    /// User directories inside a temp dir, with nothing in them.
    fn dirs(root: &TempDir) -> UserDirs {
        UserDirs {
            home: Some(root.path().join("home")),
            config: Some(root.path().join("config")),
            cache: Some(root.path().join("cache")),
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn flags_alone_are_enough_and_defaults_fill_the_rest() {
        let root = TempDir::new().expect("tmp");
        let settings = Settings::load(
            &cli(&["--client-id", "cli", "--discovery-url", "https://idp.example/realms/x", "--api-url", "http://a:1"]),
            &dirs(&root),
        )
        .expect("loads");
        assert_eq!(settings.client_id, "cli");
        assert!(settings.client_secret.is_none());
        assert_eq!(settings.discovery_url.as_str(), "https://idp.example/realms/x/.well-known/openid-configuration");
        assert_eq!(settings.api_url().expect("api").as_str(), "http://a:1/");
        assert_eq!(settings.scopes, DEFAULT_SCOPES);
        assert_eq!(settings.cache_dir, root.path().join("cache/rust-api-axum-client"));
    }

    #[test]
    fn the_original_file_location_wins_over_xdg_and_flags_win_over_the_file() {
        let root = TempDir::new().expect("tmp");
        let dirs = dirs(&root);
        write(
            &root.path().join("config/rust-api-axum-client/config.json"),
            r#"{"client_id": "from-xdg", "discovery_url": "https://xdg.example"}"#,
        );
        assert_eq!(Settings::load(&cli(&[]), &dirs).expect("xdg").client_id, "from-xdg");
        write(
            &root.path().join("home/etc/rust-api-axum-client.json"),
            r#"{"client_id": "from-home", "client_secret": "s3cret", "discovery_url": "https://home.example",
                "api_url": "https://api.example/prefix", "scopes": ["openid", "a b"], "ca_cert": "ca.pem"}"#,
        );
        let settings = Settings::load(&cli(&[]), &dirs).expect("home");
        assert_eq!(settings.client_id, "from-home");
        assert_eq!(settings.client_secret.as_ref().map(ExposeSecret::expose_secret), Some("s3cret"));
        assert!(!format!("{settings:?}").contains("s3cret"), "Debug never shows the secret");
        assert_eq!(settings.api_url().expect("api").as_str(), "https://api.example/prefix/");
        assert_eq!(settings.scopes, ["openid", "a", "b"]);
        assert_eq!(settings.ca_cert, Some(root.path().join("home/etc/ca.pem")), "relative to the file");
        let flags = cli(&["--client-secret", "fl4g-secret"]);
        assert!(!format!("{flags:?}").contains("fl4g-secret"), "nor of the command line");
        let settings = Settings::load(&cli(&["--client-id", "flag", "--scope", "x y"]), &dirs).expect("flags");
        assert_eq!((settings.client_id.as_str(), settings.scopes.join(" ")), ("flag", "x y".to_owned()));
    }

    #[test]
    fn missing_values_name_the_flag_and_the_key() {
        let root = TempDir::new().expect("tmp");
        let error = Settings::load(&cli(&["--discovery-url", "https://idp"]), &dirs(&root)).expect_err("no id");
        assert_eq!(
            error.to_string(),
            "no OAuth client id configured: pass --client-id or set \"client_id\" in the configuration file"
        );
        let error = Settings::load(&cli(&["--client-id", "x"]), &dirs(&root)).expect_err("no discovery");
        assert!(error.to_string().contains("--discovery-url") && error.to_string().contains("\"discovery_url\""));
        let settings = Settings::load(&cli(&["--client-id", "x", "--discovery-url", "https://i"]), &dirs(&root));
        let error = settings.expect("loads").api_url().expect_err("no api url").to_string();
        assert!(error.contains("--api-url") && error.contains("\"api_url\""), "{error}");
    }

    #[test]
    fn bad_files_and_urls_are_refused_with_their_location() {
        let root = TempDir::new().expect("tmp");
        let path = root.path().join("c.json");
        write(&path, r#"{"client_id": "x", "discovery_uri": "https://typo"}"#);
        let error = Settings::load(&cli(&["-c", path.to_str().expect("utf-8")]), &dirs(&root)).expect_err("typo");
        assert!(error.to_string().contains("unknown field `discovery_uri`"), "{error}");
        let absent = root.path().join("absent.json");
        let error = Settings::load(&cli(&["-c", absent.to_str().expect("utf-8")]), &dirs(&root)).expect_err("absent");
        assert!(matches!(error, ConfigError::Unreadable { .. }), "{error}");
        let error = Settings::load(&cli(&["--client-id", "x", "--discovery-url", "ftp://idp"]), &dirs(&root))
            .expect_err("scheme");
        assert!(error.to_string().starts_with("--discovery-url (\"discovery_url\"): \"ftp://idp\""), "{error}");
    }

    #[test]
    fn discovery_accepts_the_document_url_or_the_issuer() {
        for (given, expected) in [
            ("https://idp/", "https://idp/.well-known/openid-configuration"),
            ("https://idp/realms/demo", "https://idp/realms/demo/.well-known/openid-configuration"),
            ("https://idp/x/.well-known/openid-configuration", "https://idp/x/.well-known/openid-configuration"),
            (
                "https://idp/.well-known/oauth-authorization-server",
                "https://idp/.well-known/oauth-authorization-server",
            ),
        ] {
            assert_eq!(discovery_document_url(given).expect("valid").as_str(), expected);
        }
        assert!(discovery_document_url("not a url").is_err());
    }

    #[test]
    fn clear_text_to_another_host_is_warned_about_but_loopback_is_not() {
        let warning = |url: &str| cleartext_warning("--api-url", &Url::parse(url).expect("url"));
        let line = warning("http://api.example:8080/").expect("a warning");
        assert!(line.contains("--api-url") && line.contains("http://api.example:8080/"), "{line}");
        assert!(!line.contains('\n'), "one line");
        assert!(warning("http://10.0.0.5/").is_some(), "a private address is still the network");
        assert!(warning("http://localhost.example/").is_some());
        for quiet in [
            "https://api.example/",
            "http://127.0.0.1:8080/",
            "http://127.8.9.10/",
            "http://localhost:3000/",
            "http://api.localhost/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(warning(quiet), None, "{quiet}");
        }
    }
}

//! `Principal`: who is acting, as a verified token told it. Authentication makes one; the domain's rules (who owns
//! what) read it.

use std::collections::BTreeSet;

/// The caller behind a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: the stable identity that owns things.
    pub subject: String,
    /// The OAuth client the token was issued to (`client_id`, else `azp`).
    pub client_id: Option<String>,
    /// A name to show: the configured username claim, else `username`, else `sub`.
    pub username: String,
    /// Granted scopes, from `scope` (space-separated) or `scp` (array or string).
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

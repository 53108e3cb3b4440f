//! Results on standard output: lines for people (`--output text`) or the API's JSON bodies for scripts
//! (`--output json`). Writing never panics, not even into a closed pipe (`| head`).

use std::io::Write as _;

use api_types::{Greeting, ResourceList, ResourceView};

use crate::{
    api::Reply,
    auth::{cache::CachedTokens, session::Logout, session::logged_in_message},
    cli::OutputFormat,
};

/// Writes results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output(pub OutputFormat);

/// What happened to a single resource, for the text line.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// It was only read.
    Shown,
    /// It was created.
    Created,
    /// It was renamed.
    Renamed,
}

impl Output {
    /// The greeting's message.
    pub fn greeting(&self, reply: &Reply<Greeting>) {
        self.either(&reply.body, || reply.value.message.clone());
    }

    /// Every resource, as a table.
    pub fn resources(&self, reply: &Reply<ResourceList>) {
        self.either(&reply.body, || {
            if reply.value.resources.is_empty() { "No resources.".to_owned() } else { table(&reply.value.resources) }
        });
    }

    /// One resource, after reading or changing it.
    pub fn resource(&self, reply: &Reply<ResourceView>, change: Change) {
        let resource = &reply.value;
        self.either(&reply.body, || match change {
            Change::Shown => table(std::slice::from_ref(resource)),
            Change::Created => format!("Created resource {} \"{}\".", resource.id, resource.name),
            Change::Renamed => format!("Renamed resource {} to \"{}\".", resource.id, resource.name),
        });
    }

    /// A deleted resource; the API sends no body, so JSON output is empty.
    pub fn deleted(&self, id: i64) {
        if self.0 == OutputFormat::Text {
            emit(&format!("Deleted resource {id}."));
        }
    }

    /// The result of `login`.
    pub fn login(&self, tokens: &CachedTokens) {
        let body = serde_json::json!({"user": tokens.user, "scope": tokens.scope, "expires_at": tokens.expires_at});
        self.either(&body, || logged_in_message(tokens.user.as_deref()));
    }

    /// The result of `logout`.
    pub fn logout(&self, logout: &Logout) {
        let body = serde_json::json!({"was_logged_in": logout.was_logged_in, "revoked": logout.revoked});
        self.either(&body, || match (logout.was_logged_in, logout.revoked, &logout.user) {
            (false, _, _) => "Not logged in.".to_owned(),
            (true, true, Some(user)) => format!("Logged out {user}; the provider revoked the grant."),
            (true, true, None) => "Logged out; the provider revoked the grant.".to_owned(),
            (true, false, _) => {
                "Logged out (the provider offers no revocation; the tokens are only forgotten).".to_owned()
            }
        });
    }

    /// The problem document of a failed call, for scripts (people get the error line on standard error).
    pub fn problem(&self, body: &serde_json::Value) {
        if self.0 == OutputFormat::Json {
            emit_json(body);
        }
    }

    fn either(&self, body: &serde_json::Value, text: impl FnOnce() -> String) {
        match self.0 {
            OutputFormat::Json => emit_json(body),
            OutputFormat::Text => emit(&text()),
        }
    }
}

fn emit_json(body: &serde_json::Value) {
    emit(&serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string()));
}

/// One line (or block) on standard output; a write error (closed pipe) is ignored rather than a panic.
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// `ID  NAME  OWNER` with aligned columns.
fn table(resources: &[ResourceView]) -> String {
    let rows: Vec<[String; 3]> = std::iter::once(["ID".to_owned(), "NAME".to_owned(), "OWNER".to_owned()])
        .chain(resources.iter().map(|r| [r.id.to_string(), r.name.clone(), r.owner.name.clone()]))
        .collect();
    let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
    let (id, name) = (width(0), width(1));
    rows.iter()
        .map(|[i, n, o]| format!("{i:<id$}  {n:<name$}  {o}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use api_types::OwnerView;

    use super::*;

    #[test]
    fn resources_are_a_table_for_people() {
        let owner = OwnerView { id: 1, client_id: None, name: "ada".into() };
        let resources = [
            ResourceView { id: 1, name: "first".into(), owner: owner.clone() },
            ResourceView { id: 12, name: "a longer name".into(), owner },
        ];
        assert_eq!(table(&resources), "ID  NAME           OWNER\n1   first          ada\n12  a longer name  ada");
    }
}

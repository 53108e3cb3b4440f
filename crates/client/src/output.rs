//! Results on standard output: lines for people (`--output text`) or the API's JSON bodies for scripts
//! (`--output json`), with what came from the server or the provider made safe for a terminal ([`printable`]).
//! Writing never panics, not even into a closed pipe (`| head`).

use std::{borrow::Cow, fmt::Write as _, io::Write as _};

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

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

    /// One resource, after reading or changing it, with its entity tag when the server sent one (what
    /// `--if-match` takes, to change it later only if nobody else did).
    pub fn resource(&self, reply: &Reply<ResourceView>, change: Change) {
        self.either(&reply.body, || resource_text(&reply.value, reply.etag.as_deref(), change));
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
    let json = serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string());
    write_out(&json_printable(&json));
}

/// One line (or block of lines) for people on standard output, each line [`printable`].
fn emit(text: &str) {
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(printable).collect();
    write_out(&lines.join("\n"));
}

/// Writes `text` and a line break; a write error (closed pipe) is ignored rather than a panic.
fn write_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// `text` as it may be shown on a terminal: control, format and separator characters (general categories Cc, Cf,
/// Zl, Zp) as `\u{1b}`-style escapes, everything else as it is. Names, problems and the login prompt come from the
/// server and the provider: without this an `ESC` sequence in a name rewrites the user's terminal, a bidi control
/// shows it reversed, a zero-width character hides it. Every line the client prints goes through here.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escaped(c) {
            let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// Whether [`printable`] escapes `c`.
fn escaped(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Pretty JSON with the characters [`printable`] escapes written as JSON `\uXXXX` escapes (UTF-16, as JSON
/// spells them): the same document for a parser, nothing raw for a terminal. serde_json escapes only C0 controls;
/// outside strings a pretty document holds nothing but ASCII punctuation, spaces and the line breaks kept here.
fn json_printable(json: &str) -> Cow<'_, str> {
    if !json.chars().any(|c| c != '\n' && escaped(c)) {
        return Cow::Borrowed(json);
    }
    let mut shown = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c != '\n' && escaped(c) {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(shown, "\\u{unit:04x}");
            }
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// The text for one resource: a one-row table (with an `ETAG` column) when shown, a sentence when changed.
fn resource_text(resource: &ResourceView, etag: Option<&str>, change: Change) -> String {
    let tagged = etag.map(|etag| format!(" (etag {})", printable(etag))).unwrap_or_default();
    let name = printable(&resource.name);
    match (change, etag) {
        (Change::Shown, None) => table(std::slice::from_ref(resource)),
        (Change::Shown, Some(etag)) => {
            let mut row = cells(resource).to_vec();
            row.push(printable(etag).into_owned());
            align(&[["ID", "NAME", "OWNER", "ETAG"].map(str::to_owned).to_vec(), row])
        }
        (Change::Created, _) => format!("Created resource {} \"{name}\"{tagged}.", resource.id),
        (Change::Renamed, _) => format!("Renamed resource {} to \"{name}\"{tagged}.", resource.id),
    }
}

/// `ID  NAME  OWNER` with aligned columns.
fn table(resources: &[ResourceView]) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(["ID", "NAME", "OWNER"].map(str::to_owned).to_vec())
        .chain(resources.iter().map(|r| cells(r).to_vec()))
        .collect();
    align(&rows)
}

/// A resource's cells, escaped before the widths are measured, so an escaped cell keeps its column aligned.
fn cells(resource: &ResourceView) -> [String; 3] {
    [resource.id.to_string(), printable(&resource.name).into_owned(), printable(&resource.owner.name).into_owned()]
}

/// `rows` as lines of columns two spaces apart, each as wide as its widest cell (the last one not padded).
fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| rows.iter().filter_map(|row| row.get(column)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            line.trim_end().to_owned()
        })
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
            ResourceView { id: 1, name: "first".into(), owner: owner.clone(), etag: "\"1.1\"".into() },
            ResourceView { id: 12, name: "a longer name".into(), owner, etag: "\"12.1\"".into() },
        ];
        assert_eq!(table(&resources), "ID  NAME           OWNER\n1   first          ada\n12  a longer name  ada");
    }

    #[test]
    fn the_entity_tag_is_shown_when_the_server_sent_one() {
        let owner = OwnerView { id: 1, client_id: None, name: "ada".into() };
        let resource = ResourceView { id: 7, name: "alpha".into(), owner, etag: String::new() };
        let tag = Some("\"3-abc\"");
        assert_eq!(resource_text(&resource, tag, Change::Created), "Created resource 7 \"alpha\" (etag \"3-abc\").");
        assert_eq!(resource_text(&resource, None, Change::Created), "Created resource 7 \"alpha\".");
        assert_eq!(resource_text(&resource, tag, Change::Renamed), "Renamed resource 7 to \"alpha\" (etag \"3-abc\").");
        assert_eq!(resource_text(&resource, None, Change::Renamed), "Renamed resource 7 to \"alpha\".");
        assert_eq!(resource_text(&resource, tag, Change::Shown), "ID  NAME   OWNER  ETAG\n7   alpha  ada    \"3-abc\"");
        assert_eq!(resource_text(&resource, None, Change::Shown), "ID  NAME   OWNER\n7   alpha  ada");
        assert_eq!(
            resource_text(&resource, Some("\"\u{1b}[2J\""), Change::Created),
            "Created resource 7 \"alpha\" (etag \"\\u{1b}[2J\").",
            "the server's words are escaped"
        );
    }

    #[test]
    fn control_format_and_separator_characters_are_shown_escaped() {
        assert_eq!(printable("\u{1b}[31mred\u{1b}]0;title\u{7}"), "\\u{1b}[31mred\\u{1b}]0;title\\u{7}");
        assert_eq!(printable("a\u{9b}2Jb"), "a\\u{9b}2Jb", "the C1 CSI too");
        assert_eq!(printable("evil\u{202E}txt\u{200B}\u{FEFF}"), "evil\\u{202e}txt\\u{200b}\\u{feff}");
        assert_eq!(printable("line\u{2028}para\u{2029}\nnext\t"), "line\\u{2028}para\\u{2029}\\u{a}next\\u{9}");
        assert!(
            matches!(printable("café 名前 🦀 O'Brien \\ C:\\x"), std::borrow::Cow::Borrowed(_)),
            "the rest as it is"
        );
    }

    #[test]
    fn json_keeps_the_document_and_escapes_what_a_terminal_would_obey() {
        let body = serde_json::json!({"name": "\u{1b}[31m\u{9b}\u{202e}\u{2028}\u{e0041}", "n": 1});
        let json = serde_json::to_string_pretty(&body).expect("json");
        let shown = json_printable(&json);
        assert!(!shown.chars().any(|c| c != '\n' && escaped(c)), "{shown}");
        assert!(shown.contains(r"\u009b\u202e\u2028\udb40\udc41"), "{shown}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&shown).expect("still JSON"), body);
    }

    #[test]
    fn tables_escape_their_cells_and_stay_aligned() {
        let owner = OwnerView { id: 1, client_id: None, name: "\u{1b}]0;owned\u{7}".into() };
        let resources = [ResourceView { id: 1, name: "\u{1b}[2J".into(), owner, etag: "\"1.1\"".into() }];
        assert_eq!(table(&resources), "ID  NAME       OWNER\n1   \\u{1b}[2J  \\u{1b}]0;owned\\u{7}");
    }
}

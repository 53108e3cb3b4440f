//! Reading a [`Principal`] (the domain's "who is acting") from a verified token's claims: JWT claims and
//! introspection answers alike.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{AuthError, Rejection};
use crate::domain::principal::{DisplayName, Principal};

/// Longest subject accepted, in characters: the owners' `subject` column holds 255 on every engine, and a longer
/// one would fail the caller's first write with a database error instead of a refusal.
pub const MAX_SUBJECT_CHARS: usize = 255;

/// Reads the identity from claims; a token naming no subject, or one too long to store, is refused.
pub fn from_claims(claims: &Map<String, Value>, username_claim: &str) -> Result<Principal, AuthError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let subject = text("sub")
        .ok_or_else(|| AuthError::invalid(Rejection::Malformed, "The access token names no subject"))?
        .to_owned();
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(AuthError::invalid(
            Rejection::Malformed,
            format!("The access token's subject is longer than {MAX_SUBJECT_CHARS} characters"),
        ));
    }
    let client_id = text("client_id").or_else(|| text("azp")).map(str::to_owned);
    // Cleaned in the domain: the claim reaches every reader of the caller's resources, and their terminals.
    let username = [text(username_claim), text("username"), Some(subject.as_str())]
        .into_iter()
        .flatten()
        .find_map(DisplayName::from_claim)
        .unwrap_or_else(DisplayName::unnamed);
    let mut scopes = BTreeSet::new();
    for source in ["scope", "scp"] {
        match claims.get(source) {
            Some(Value::String(list)) => scopes.extend(list.split_whitespace().map(str::to_owned)),
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
    Ok(Principal { subject, client_id, username, scopes })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn principal(claims: Value) -> Option<Principal> {
        from_claims(claims.as_object().expect("object"), "preferred_username").ok()
    }

    #[test]
    fn reads_scope_string_client_id_and_preferred_username() {
        let p = principal(json!({"sub": "s1", "client_id": "c", "preferred_username": "ada", "scope": "a  b"}))
            .expect("principal");
        assert_eq!(p.subject, "s1");
        assert_eq!(p.client_id.as_deref(), Some("c"));
        assert_eq!(p.username, "ada");
        assert!(p.has_scope("a") && p.has_scope("b") && !p.has_scope("c"));
    }

    #[test]
    fn falls_back_to_azp_username_then_sub_and_reads_scp_arrays() {
        let p = principal(json!({"sub": "s1", "azp": "c2", "username": "u", "scp": ["x", "y"]})).expect("principal");
        assert_eq!((p.client_id.as_deref(), p.username.as_str()), (Some("c2"), "u"));
        assert!(p.has_scope("x") && p.has_scope("y"));
        let bare = principal(json!({"sub": "s2"})).expect("principal");
        assert_eq!(bare.username, "s2");
        assert!(bare.scopes.is_empty());
    }

    #[test]
    fn the_display_name_loses_terminal_escapes_and_bidi_controls_and_fits_its_column() {
        let p = principal(json!({"sub": "s1", "preferred_username": "\u{1b}[31mred\u{1b}]0;title\u{7} \u{202E}evil"}))
            .expect("principal");
        assert_eq!(p.username.to_string(), "[31mred]0;title evil");
        let long = principal(json!({"sub": "s1", "preferred_username": "é".repeat(300)})).expect("principal");
        assert_eq!(long.username.to_string(), "é".repeat(255), "cut to 255 characters, not bytes");
        let invisible = principal(json!({"sub": "s1", "preferred_username": "\u{200B}\u{202E}"})).expect("principal");
        assert_eq!(invisible.username.to_string(), "s1", "a name with nothing visible left falls back to the subject");
    }

    #[test]
    fn no_subject_or_one_too_long_to_store_is_no_principal() {
        assert_eq!(principal(json!({"client_id": "c"})), None);
        assert_eq!(principal(json!({"sub": ""})), None);
        assert!(principal(json!({"sub": "é".repeat(MAX_SUBJECT_CHARS)})).is_some(), "255 characters, not bytes");
        let long = json!({"sub": "s".repeat(MAX_SUBJECT_CHARS + 1)});
        match from_claims(long.as_object().expect("object"), "preferred_username") {
            Err(AuthError::InvalidToken(_, reason)) => {
                assert_eq!(reason, "The access token's subject is longer than 255 characters");
            }
            other => panic!("{other:?}"),
        }
    }
}

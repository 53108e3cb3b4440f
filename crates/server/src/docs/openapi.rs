//! The OpenAPI document as the service serves it: the registry's document, finished with what only the running
//! deployment knows (this build's version, the OpenID provider's endpoints and the scope names in force).

use utoipa::openapi::{
    OpenApi,
    security::{AuthorizationCode, Flow, OAuth2, Scopes, SecurityRequirement, SecurityScheme},
};

use crate::{
    apis,
    auth::{
        OidcSettings,
        settings::{DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE},
    },
};

/// The OpenAPI document of everything the registry (`apis::router`) mounts, as a server with `oidc` settings serves it.
pub fn openapi(oidc: Option<&OidcSettings>) -> OpenApi {
    finish(apis::router().into_openapi(), oidc)
}

/// Adds what the derive cannot know at compile time: this build's version and the identity provider's
/// endpoints. Without OIDC settings the endpoints are placeholders under `idp.invalid`.
pub fn finish(mut api: OpenApi, oidc: Option<&OidcSettings>) -> OpenApi {
    api.info.version = crate::VERSION.to_owned();
    let (authorize, token) = oidc
        .map(|s| {
            let base = s.issuer.trim_end_matches('/');
            (
                s.auth_uri.clone().unwrap_or_else(|| format!("{base}/auth")),
                s.token_uri.clone().unwrap_or_else(|| format!("{base}/token")),
            )
        })
        .unwrap_or_else(|| ("https://idp.invalid/authorize".to_owned(), "https://idp.invalid/token".to_owned()));
    let (read, write) =
        oidc.map_or((DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE), |s| (s.read_scope.as_str(), s.write_scope.as_str()));
    let scopes = Scopes::from_iter([(read, "Read resources"), (write, "Create, change and delete resources")]);
    let scheme = SecurityScheme::OAuth2(OAuth2::with_description(
        [Flow::AuthorizationCode(AuthorizationCode::new(authorize, token, scopes))],
        "Bearer access tokens from the OpenID provider configured with --oidc-secrets (JWTs are verified \
         locally, opaque tokens introspected). Swagger UI's Authorize uses the authorization code flow with PKCE.",
    ));
    api.components.get_or_insert_with(Default::default).add_security_scheme(SECURITY_SCHEME, scheme);
    rename_scopes(&mut api, &[(READ_ACCESS, read), (WRITE_ACCESS, write)]);
    api
}

/// What an operation's `security(("oidc" = [...]))` names: the access it needs, not a scope's name. utoipa takes
/// only string literals there, so the names cannot come from `api_types::scope`; [`finish`] writes the scope names
/// in force (the defaults, or the deployment's) in their place, and they have one source.
pub const READ_ACCESS: &str = "read";
/// See [`READ_ACCESS`].
pub const WRITE_ACCESS: &str = "write";

/// Operations name the access they need in their `#[utoipa::path]`; every security requirement gets the scope
/// names in force instead. The requirements are rebuilt in place on the typed document: a JSON
/// round trip of the whole document is lossy, because utoipa deserialises the untagged `Flow` enum as the first
/// variant that fits, and an authorization code flow fits `Implicit`, which has no `tokenUrl`.
fn rename_scopes(api: &mut OpenApi, renames: &[(&str, &str)]) {
    let operations = api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
    });
    let requirements = operations.flatten().filter_map(|operation| operation.security.as_mut()).flatten();
    for requirement in requirements {
        *requirement = renamed(requirement, renames);
    }
}

/// `requirement` with its scopes renamed. utoipa keeps a requirement's entries private, so they are read from
/// its JSON form (serialising only; nothing is parsed back into utoipa types).
fn renamed(requirement: &SecurityRequirement, renames: &[(&str, &str)]) -> SecurityRequirement {
    let Ok(serde_json::Value::Object(entries)) = serde_json::to_value(requirement) else {
        return requirement.clone();
    };
    let rename = |scope: &serde_json::Value| {
        let scope = scope.as_str().unwrap_or_default();
        renames.iter().find(|(default, _)| *default == scope).map_or(scope, |(_, renamed)| *renamed).to_owned()
    };
    entries.iter().fold(SecurityRequirement::default(), |built, (scheme, scopes)| {
        let scopes: Vec<String> = scopes.as_array().map(|s| s.iter().map(rename).collect()).unwrap_or_default();
        built.add(scheme.as_str(), scopes)
    })
}

/// Name of the security scheme protected operations refer to in `security(...)`.
pub const SECURITY_SCHEME: &str = "oidc";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scope an operation requires, in the document as served.
    fn required_scopes(api: &OpenApi) -> Vec<String> {
        let document = serde_json::to_value(api).expect("document serialises");
        let mut scopes: Vec<String> = document["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .filter_map(serde_json::Value::as_object)
            .flat_map(|item| item.values())
            .filter_map(|operation| operation["security"].as_array())
            .flatten()
            .filter_map(|requirement| requirement[SECURITY_SCHEME].as_array())
            .flatten()
            .filter_map(|scope| scope.as_str().map(str::to_owned))
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    #[test]
    fn operations_require_the_shared_scope_names_not_the_access_placeholders() {
        assert_eq!(required_scopes(&openapi(None)), [api_types::scope::READ, api_types::scope::WRITE]);
    }
}

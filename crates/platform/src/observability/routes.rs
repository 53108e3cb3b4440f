//! Route templates: which declared route a request path belongs to (`/api/resource/v1/{id}`), so that metric
//! labels and span names name the route, never the raw path with its unbounded ids.

use std::sync::Arc;

/// The label every path that matches no route shares, so probing random paths cannot create new series.
pub const UNMATCHED: &str = "unmatched";

/// Index of a route template in [`RouteTemplates`]; `RouteId(0)` is [`UNMATCHED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(pub usize);

/// Every route template the service serves, looked up per request with the same matcher axum routes with.
#[derive(Debug, Clone)]
pub struct RouteTemplates(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    matcher: matchit::Router<RouteId>,
    /// `templates[id.0]`; index 0 is [`UNMATCHED`].
    templates: Vec<String>,
}

impl RouteTemplates {
    /// The templates of the routes the service mounts, in axum's syntax (`/api/resource/v1/{id}`,
    /// `/apidoc/swagger/{*asset}`). The application collects them from the routers it mounts
    /// ([`crate::layers::Routes`]), so no list of them is kept by hand.
    pub fn new<T: AsRef<str>>(templates: impl IntoIterator<Item = T>) -> Self {
        let mut inner = Inner { matcher: matchit::Router::new(), templates: vec![UNMATCHED.to_owned()] };
        for template in templates {
            let template = template.as_ref();
            let id = RouteId(inner.templates.len());
            // A template the matcher refuses (a duplicate, say) is counted as unmatched rather than failing start.
            if inner.matcher.insert(template, id).is_ok() {
                inner.templates.push(template.to_owned());
            }
        }
        Self(Arc::new(inner))
    }

    /// The route `path` belongs to. Trailing slashes are ignored as the router ignores them.
    pub fn lookup(&self, path: &str) -> RouteId {
        let trimmed = match path.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        self.0.matcher.at(trimmed).map_or(RouteId(0), |matched| *matched.value)
    }

    /// The template of `id`, e.g. `/api/resource/v1/{id}`.
    pub fn template(&self, id: RouteId) -> &str {
        self.0.templates.get(id.0).map_or(UNMATCHED, String::as_str)
    }

    /// How many ids [`Self::lookup`] can return, [`UNMATCHED`] included.
    pub fn len(&self) -> usize {
        self.0.templates.len()
    }

    /// Never true: [`UNMATCHED`] is always there.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_templates_and_strangers_to_one_label() {
        let routes = RouteTemplates::new([
            "/api/resource/v1",
            "/api/resource/v1/{id}",
            "/healthz",
            "/readyz",
            "/apidoc/swagger",
            "/apidoc/swagger/{*asset}",
            "/readyz",
        ]);
        let template = |path| routes.template(routes.lookup(path)).to_owned();
        assert_eq!(template("/api/resource/v1/42"), "/api/resource/v1/{id}");
        assert_eq!(template("/api/resource/v1"), "/api/resource/v1");
        assert_eq!(template("/healthz/"), "/healthz");
        assert_eq!(template("/readyz"), "/readyz");
        assert_eq!(template("/apidoc/swagger/swagger-ui.css"), "/apidoc/swagger/{*asset}");
        assert_eq!(template("/apidoc/swagger/"), "/apidoc/swagger");
        assert_eq!(template("/wp-login.php"), UNMATCHED);
        assert_eq!(template("/"), UNMATCHED);
        assert_eq!(routes.lookup("/nope/1"), RouteId(0));
        assert_eq!(routes.len(), 7, "unmatched and six templates: the duplicate is refused");
    }
}

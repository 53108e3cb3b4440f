//! The trailing-slash trim: every route answers with and without its trailing slash, without a redirect.

use axum::http::{Request, Uri, uri::PathAndQuery};

/// Makes `/a/b/` route like `/a/b` so every route answers with and without the trailing slash, without a
/// redirect. Paths under `keep` are left alone: Swagger UI needs its slash to resolve its relative assets.
pub fn trim_trailing_slash<B>(keep: &'static [&'static str]) -> impl Fn(Request<B>) -> Request<B> + Clone {
    move |mut request| {
        let path = request.uri().path();
        if path.len() > 1 && path.ends_with('/') && !keep.iter().any(|prefix| path.starts_with(prefix)) {
            let trimmed = path.trim_end_matches('/');
            let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
            let path_and_query = match request.uri().query() {
                Some(query) => format!("{trimmed}?{query}"),
                None => trimmed.to_owned(),
            };
            let mut parts = request.uri().clone().into_parts();
            if let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) {
                parts.path_and_query = Some(path_and_query);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(uri: &str) -> String {
        let request = Request::builder().uri(uri).body(()).expect("request");
        trim_trailing_slash(&["/keep/"])(request).uri().to_string()
    }

    #[test]
    fn trailing_slashes_are_trimmed_keeping_the_query() {
        assert_eq!(trimmed("/api/greeting/v2/?name=Ada"), "/api/greeting/v2?name=Ada");
        assert_eq!(trimmed("/healthz//"), "/healthz");
        assert_eq!(trimmed("/"), "/");
        assert_eq!(trimmed("//"), "/");
        assert_eq!(trimmed("/keep/assets/"), "/keep/assets/");
        assert_eq!(trimmed("/no/slash"), "/no/slash");
    }
}

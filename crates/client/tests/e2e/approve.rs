//! Approves or denies a device login at the test provider by submitting its HTML forms over HTTP, as a person in
//! a browser would (the Rust twin of `tools/idp/approve-device.mjs`; the steps are in `tools/idp/README.md`).

use url::Url;

/// An HTML form: where it posts and its named inputs.
#[derive(Debug)]
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

impl Form {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A page: status, `Location` and text.
struct Page {
    status: u16,
    location: Option<String>,
    text: String,
}

/// A browser with a fresh cookie jar, not following redirects so every step is visible.
struct Browser {
    http: reqwest::Client,
    base: Url,
}

impl Browser {
    fn new(verification_uri_complete: &str, ca_pem: Option<&[u8]>) -> Self {
        rust_api_axum::auth::http::install_crypto_provider();
        let mut http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            http = http.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem).expect("CA PEM"));
        }
        let http = http.build().expect("browser client");
        Self { http, base: Url::parse(verification_uri_complete).expect("verification URI") }
    }

    async fn request(&self, method: reqwest::Method, target: &str, form: Option<&[(String, String)]>) -> Page {
        let url = self.base.join(target).expect("resolvable URL");
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|v| v.to_str().expect("ASCII location").to_owned());
        let text = response.text().await.expect("page text");
        Page { status, location, text }
    }

    async fn get(&self, target: &str) -> Page {
        self.request(reqwest::Method::GET, target, None).await
    }

    async fn post(&self, target: &str, form: &[(String, String)]) -> Page {
        self.request(reqwest::Method::POST, target, Some(form)).await
    }

    /// Follows redirects with GET until a page that is not one.
    async fn follow(&self, mut page: Page) -> Page {
        for _ in 0..10 {
            let Some(location) = page.location.take() else { break };
            page = self.get(&location).await;
        }
        page
    }
}

/// Logs in as `user` and approves the device code; `ca_pem` is the private CA of a provider served over HTTPS.
pub async fn approve(verification_uri_complete: &str, user: &str, ca_pem: Option<&[u8]>) {
    let browser = Browser::new(verification_uri_complete, ca_pem);
    let confirm = confirm_page(&browser, verification_uri_complete).await;
    let mut page = browser.follow(browser.post(&confirm.action, &confirm.fields).await).await;
    // Login, then consent (either may be skipped when a session or grant exists), then the success page.
    for _ in 0..5 {
        let Some(form) = parse_form(&page.text, None) else { break };
        let fields: Vec<(String, String)> = match form.field("prompt") {
            Some("login") => vec![
                ("prompt".into(), "login".into()),
                ("login".into(), user.into()),
                ("password".into(), "any-password".into()),
            ],
            Some("consent") => vec![("prompt".into(), "consent".into())],
            _ => break,
        };
        page = browser.follow(browser.post(&form.action, &fields).await).await;
    }
    assert!(
        page.text.contains("Sign-in Success"),
        "device approval did not succeed (HTTP {}): {}",
        page.status,
        &page.text[..page.text.len().min(600)]
    );
}

/// Aborts the device login on the provider's confirmation page, as the `[ Abort ]` button does.
pub async fn deny(verification_uri_complete: &str) {
    let browser = Browser::new(verification_uri_complete, None);
    let confirm = confirm_page(&browser, verification_uri_complete).await;
    let mut fields: Vec<(String, String)> = confirm.fields.into_iter().filter(|(name, _)| name != "confirm").collect();
    fields.push(("abort".into(), "yes".into()));
    let page = browser.post(&confirm.action, &fields).await;
    assert_eq!(page.status, 200, "the abort answers with an error page");
}

/// Steps 1 and 2: the auto-submitting form, then the "Confirm Device" page's form.
async fn confirm_page(browser: &Browser, verification_uri_complete: &str) -> Form {
    let page = browser.get(verification_uri_complete).await;
    let auto =
        parse_form(&page.text, None).unwrap_or_else(|| panic!("no form on the device page (HTTP {})", page.status));
    assert!(auto.field("xsrf").is_some(), "the device page carries an xsrf token");
    let page = browser.post(&auto.action, &auto.fields).await;
    parse_form(&page.text, Some("op.deviceConfirmForm"))
        .unwrap_or_else(|| panic!("no confirm form (HTTP {}): {}", page.status, &page.text[..page.text.len().min(400)]))
}

/// The first `<form>` in `html` (or the one with `id`), with its action and named inputs.
fn parse_form(html: &str, id: Option<&str>) -> Option<Form> {
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let after = &rest[start..];
        let open_end = after.find('>')?;
        let attributes = &after[..open_end];
        let body_end = after.find("</form>").unwrap_or(after.len());
        let body = &after[open_end..body_end];
        rest = &after[body_end..];
        if id.is_some_and(|id| !attributes.contains(&format!("id=\"{id}\""))) {
            continue;
        }
        let action = attribute(attributes, "action").unwrap_or_default();
        let fields = body
            .split("<input")
            .skip(1)
            .filter_map(|input| {
                let tag = &input[..input.find('>').unwrap_or(input.len())];
                Some((attribute(tag, "name")?, attribute(tag, "value").unwrap_or_default()))
            })
            .collect();
        return Some(Form { action, fields });
    }
    None
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(decode_html(&tag[start..end]))
}

fn decode_html(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[test]
fn forms_are_parsed_like_a_browser_would() {
    let html = r#"<form method="post" action="/a?x=1&amp;y=2"><input type="hidden" name="xsrf" value="t&quot;k"/>
        <input name="empty"><button>go</button></form>
        <form id="op.deviceConfirmForm" method="post" action="/device"><input name="confirm" value="yes"></form>"#;
    let form = parse_form(html, None).expect("first form");
    assert_eq!(form.action, "/a?x=1&y=2");
    assert_eq!(form.fields, [("xsrf".to_owned(), "t\"k".to_owned()), ("empty".to_owned(), String::new())]);
    let form = parse_form(html, Some("op.deviceConfirmForm")).expect("form by id");
    assert_eq!((form.action.as_str(), form.field("confirm")), ("/device", Some("yes")));
}

//! Which names the chores accept: project names (crate, binary, chart and image names at once), API names
//! (Rust modules and URL segments) and API versions (`v<N>`), each refused with one line saying what fits.

/// Longest project name: Kubernetes names stop at 63 characters and the chart appends suffixes such as
/// `-migrate` to the release name, which itself often carries a prefix.
const MAX_PROJECT_NAME: usize = 40;

/// Longest API name: it becomes a module, a URL segment and part of operation ids.
const MAX_API_NAME: usize = 40;

/// Rust keywords (strict and reserved, through edition 2024): the snake form names a library and a module, and
/// `use r#match::...` is no way to start a project.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "typeof", "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Names cargo refuses for a package (Rust's own libraries) or that no Windows file can have.
const RESERVED: &[&str] = &[
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
];

/// The project's name in the forms the repository spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectName {
    /// Package, binary, chart, image and scope names: `acme-orders`.
    pub kebab: String,
    /// The library and Rust paths: `acme_orders`.
    pub snake: String,
}

impl ProjectName {
    /// Accepts lowercase ASCII letters and digits in words joined by single hyphens, starting with a letter: a
    /// valid crate and binary name that is also a valid Helm chart, image and Kubernetes name (those refuse
    /// uppercase and underscores), and whose snake form is a usable library name.
    pub fn parse(name: &str) -> Result<Self, String> {
        let fits = "use lowercase letters, digits and single hyphens, starting with a letter, e.g. acme-orders";
        if name.is_empty() {
            return Err(format!("the new name is empty: {fits}"));
        }
        if name.len() > MAX_PROJECT_NAME {
            return Err(format!(
                "`{name}` is longer than {MAX_PROJECT_NAME} characters (it also names Kubernetes objects)"
            ));
        }
        if !words_joined_by(name, '-') {
            return Err(format!("`{name}` is not a valid crate and binary name here: {fits}"));
        }
        let snake = name.replace('-', "_");
        if KEYWORDS.contains(&snake.as_str()) {
            return Err(format!("`{name}` is a Rust keyword and cannot name the library"));
        }
        if RESERVED.contains(&snake.as_str()) {
            return Err(format!("`{name}` is reserved (a Rust library or a Windows device name)"));
        }
        Ok(Self { kebab: name.to_owned(), snake })
    }
}

/// A validated API name: a Rust module name, also used verbatim in paths, tags and operation ids.
pub fn api(name: &str) -> Result<&str, String> {
    let fits = "an API name is a Rust module name: lowercase letters, digits and single underscores, starting with a \
                letter, e.g. orders or order_items";
    if name.is_empty() || name.len() > MAX_API_NAME || !words_joined_by(name, '_') {
        return Err(format!("`{name}` is not a valid API name: {fits}"));
    }
    if KEYWORDS.contains(&name) || RESERVED.contains(&name) {
        return Err(format!("`{name}` is a Rust keyword or reserved name and cannot name a module"));
    }
    Ok(name)
}

/// A validated version `v<N>` (N from 1, no leading zero) as its number.
pub fn version(text: &str) -> Result<u32, String> {
    let fits = "a version is `v` and a number from 1 without leading zeros, e.g. v4";
    let digits = text.strip_prefix('v').ok_or_else(|| format!("`{text}` is not a version: {fits}"))?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a version: {fits}"));
    }
    digits.parse().map_err(|_| format!("`{text}` is not a version: {fits}"))
}

/// `order_items` as `OrderItems`, for type names.
pub fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Words of lowercase ASCII letters and digits joined by single `separator`s, the first starting with a letter.
fn words_joined_by(name: &str, separator: char) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .split(separator)
            .all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_that_fit_every_place_the_name_goes_are_accepted() {
        for name in ["acme-orders", "orders", "a", "x9", "my-api-2"] {
            let parsed = ProjectName::parse(name).expect(name);
            assert_eq!(parsed.snake, name.replace('-', "_"));
        }
    }

    #[test]
    fn other_project_names_are_refused_with_a_reason() {
        for (name, reason) in [
            ("", "empty"),
            ("Acme", "not a valid crate"),
            ("acme_orders", "not a valid crate"),
            ("9lives", "not a valid crate"),
            ("-acme", "not a valid crate"),
            ("acme-", "not a valid crate"),
            ("acme--orders", "not a valid crate"),
            ("acme orders", "not a valid crate"),
            ("acmé", "not a valid crate"),
            ("acme/orders", "not a valid crate"),
            ("match", "keyword"),
            ("test", "reserved"),
            ("std", "reserved"),
            ("nul", "reserved"),
        ] {
            let refused = ProjectName::parse(name).expect_err(name);
            assert!(refused.contains(reason), "{name}: {refused}");
            assert!(!refused.contains('\n'), "one line: {refused}");
        }
        assert!(ProjectName::parse(&"a".repeat(41)).expect_err("long").contains("longer than 40"));
    }

    #[test]
    fn api_names_are_module_names() {
        for name in ["orders", "order_items", "v2api"] {
            assert_eq!(api(name), Ok(name));
        }
        for name in ["", "Orders", "order-items", "_orders", "orders_", "order__items", "1orders", "type", "self"] {
            assert!(api(name).is_err(), "{name}");
        }
    }

    #[test]
    fn versions_are_v_and_a_positive_number() {
        assert_eq!(version("v1"), Ok(1));
        assert_eq!(version("v42"), Ok(42));
        for text in ["", "v", "4", "v0", "v04", "V4", "v4a", "v-1", "v99999999999"] {
            assert!(version(text).is_err(), "{text}");
        }
    }

    #[test]
    fn pascal_case_joins_the_words() {
        assert_eq!(pascal("order_items"), "OrderItems");
        assert_eq!(pascal("orders"), "Orders");
    }
}

//! What the greeting APIs say, independent of which version asks.

use super::name::Name;

/// The anonymous greeting of greeting v1.
pub fn greet_world() -> String {
    "Hello World".to_owned()
}

/// Greets a person by name, or a stranger when nobody gave a name.
pub fn greet(name: Option<&Name>) -> String {
    format!("Hello {}", name.map_or("Stranger", Name::as_str))
}

/// Greets an authenticated caller by the name their identity provider gave.
pub fn greet_caller(username: &str) -> String {
    format!("Hello {username}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name_or_as_stranger() {
        assert_eq!(greet(Some(&Name::parse("Ada").expect("valid"))), "Hello Ada");
        assert_eq!(greet(None), "Hello Stranger");
        assert_eq!(greet_world(), "Hello World");
        assert_eq!(greet_caller("ada"), "Hello ada");
    }
}

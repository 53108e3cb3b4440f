//! What `cargo xtask new-entity` is asked for, checked before anything is written: the entity's name and plural,
//! its fields (`name:type`, `?` for optional) and which field is unique per owner. Each refusal is one line
//! saying what fits.

use crate::names;

/// Longest `string(N)`: 1,024 characters keep a row of several of them within MariaDB's 65,535-byte row limit
/// (4 bytes a character in utf8mb4); longer texts are `text`.
pub const MAX_STRING_CHARS: u32 = 1024;

/// Longest unique `string(N)`: MariaDB indexes at most 3,072 bytes, and the unique key is (owner_id, the field)
/// at 4 bytes a character.
pub const MAX_UNIQUE_CHARS: u32 = 512;

/// Most digits of a `decimal(p,s)`: 18 digits of any sign fit the `i64` it is stored as.
pub const MAX_DECIMAL_DIGITS: u32 = 18;

/// The `decimal` without `(p,s)`: 16 digits before the point and 2 after, as money usually needs.
pub const DEFAULT_DECIMAL: (u32, u32) = (18, 2);

/// Field names the generated code uses beside the fields: the id and the owner in every body and row, and the
/// words that name the entity's other types (`<Entity>Fields`, `<Entity>Page`, ... would collide with a field's
/// type `<Entity><Field>`).
const RESERVED_FIELDS: &[&str] = &[
    "id", "owner", "owner_id", "fields", "page", "error", "store", "input", "view", "list", "next", "etag", "version",
];

/// A field's type, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string(N)`: at most N characters, not blank, no control, format or separator characters, stored in NFC and
    /// trimmed.
    String(u32),
    /// `text`: any text without NUL, kept verbatim.
    Text,
    /// `integer`: an `i64`.
    Integer,
    /// `boolean`.
    Boolean,
    /// `timestamp`: a point in time, RFC 3339 on the wire, microseconds since the epoch in storage.
    Timestamp,
    /// `decimal` / `decimal(p,s)`: exact, a string on the wire, units of 10^-s in storage.
    Decimal {
        /// Digits in all.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
}

/// One field of the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name: a Rust field, a column and a JSON member.
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// Whether it may be absent (`null`).
    pub optional: bool,
}

/// The entity as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// `order_item`: modules, the API's path segment, the tag.
    pub name: String,
    /// `order_items`: the table, the domain's and the store's modules, the list's member.
    pub plural: String,
    /// The fields, in the order given.
    pub fields: Vec<Field>,
    /// The index of the field unique per owner, if any.
    pub unique: Option<usize>,
}

/// How the caller chose the unique field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unique {
    /// The first required `string(N)` field, if there is one.
    Default,
    /// This field.
    Field(String),
    /// No unique field.
    None,
}

impl Entity {
    /// Checks everything that can be checked without the checkout.
    pub fn parse(name: &str, plural: Option<&str>, fields: &[String], unique: &Unique) -> Result<Self, String> {
        let name = names::api(name).map_err(|e| e.replace("API name", "entity name"))?.to_owned();
        let plural = match plural {
            Some(plural) => names::api(plural).map_err(|e| format!("--plural: {e}"))?.to_owned(),
            None => plural_of(&name),
        };
        if plural == name {
            return Err(format!("the plural of `{name}` must differ from it (it names the table and the modules)"));
        }
        if fields.is_empty() {
            return Err("an entity needs at least one --field NAME:TYPE".to_owned());
        }
        let mut parsed: Vec<Field> = Vec::new();
        for spec in fields {
            let field = Field::parse(spec)?;
            if parsed.iter().any(|f| f.name == field.name) {
                return Err(format!("the field `{}` is given twice", field.name));
            }
            parsed.push(field);
        }
        let unique = match unique {
            Unique::None => None,
            Unique::Default => parsed.iter().position(|f| matches!(f.kind, Kind::String(_)) && !f.optional),
            Unique::Field(wanted) => {
                let at = parsed
                    .iter()
                    .position(|f| f.name == *wanted)
                    .ok_or_else(|| format!("--unique {wanted}: there is no field `{wanted}`"))?;
                let field = &parsed[at];
                if !matches!(field.kind, Kind::String(_)) || field.optional {
                    return Err(format!(
                        "--unique {wanted}: only a required string(N) field can be unique per owner (`{wanted}` is {})",
                        field.type_spec()
                    ));
                }
                Some(at)
            }
        };
        if let Some(Field { name, kind: Kind::String(chars), .. }) = unique.map(|at| &parsed[at])
            && *chars > MAX_UNIQUE_CHARS
        {
            return Err(format!(
                "the unique field `{name}` is string({chars}); a unique string holds at most {MAX_UNIQUE_CHARS} \
                 characters (MariaDB indexes 3,072 bytes); give --unique another field or --no-unique"
            ));
        }
        Ok(Self { name, plural, fields: parsed, unique })
    }

    /// The unique field, if any.
    pub fn unique_field(&self) -> Option<&Field> {
        self.unique.map(|at| &self.fields[at])
    }

    /// Whether any field has `kind`'s type (whatever its size).
    pub fn has(&self, kind: fn(&Kind) -> bool) -> bool {
        self.fields.iter().any(|f| kind(&f.kind))
    }
}

impl Field {
    /// Parses `name:type` or `name:type?`.
    fn parse(spec: &str) -> Result<Self, String> {
        let fits = "a field is NAME:TYPE with TYPE one of string(N), text, integer, boolean, timestamp, decimal, \
                    decimal(P,S), and ? after it for an optional field, e.g. due:timestamp?";
        let (name, ty) = spec.split_once(':').ok_or_else(|| format!("`{spec}` is not a field: {fits}"))?;
        let name = names::api(name).map_err(|_| {
            format!("`{name}` is not a valid field name: lowercase letters, digits and single underscores, e.g. due_at")
        })?;
        if RESERVED_FIELDS.contains(&name) {
            return Err(format!(
                "the field name `{name}` is taken by the generated code (reserved: {})",
                RESERVED_FIELDS.join(", ")
            ));
        }
        let (ty, optional) = match ty.strip_suffix('?') {
            Some(ty) => (ty, true),
            None => (ty, false),
        };
        let kind = Kind::parse(ty).map_err(|why| format!("`{spec}`: {why}"))?;
        Ok(Self { name: name.to_owned(), kind, optional })
    }

    /// The type as the command line writes it.
    pub fn type_spec(&self) -> String {
        let ty = match self.kind {
            Kind::String(chars) => format!("string({chars})"),
            Kind::Text => "text".to_owned(),
            Kind::Integer => "integer".to_owned(),
            Kind::Boolean => "boolean".to_owned(),
            Kind::Timestamp => "timestamp".to_owned(),
            Kind::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        };
        if self.optional { format!("{ty}?") } else { ty }
    }
}

impl Kind {
    fn parse(ty: &str) -> Result<Self, String> {
        let number = |text: &str, what: &str| {
            text.trim().parse::<u32>().map_err(|_| format!("{what} must be a whole number, got `{}`", text.trim()))
        };
        match ty {
            "text" => return Ok(Self::Text),
            "integer" => return Ok(Self::Integer),
            "boolean" => return Ok(Self::Boolean),
            "timestamp" => return Ok(Self::Timestamp),
            "decimal" => return Ok(Self::Decimal { precision: DEFAULT_DECIMAL.0, scale: DEFAULT_DECIMAL.1 }),
            _ => {}
        }
        if let Some(chars) = ty.strip_prefix("string(").and_then(|rest| rest.strip_suffix(')')) {
            let chars = number(chars, "the length of string(N)")?;
            if !(1..=MAX_STRING_CHARS).contains(&chars) {
                return Err(format!(
                    "string(N) holds 1 to {MAX_STRING_CHARS} characters, not {chars}; use text for longer texts"
                ));
            }
            return Ok(Self::String(chars));
        }
        if let Some(args) = ty.strip_prefix("decimal(").and_then(|rest| rest.strip_suffix(')')) {
            let (precision, scale) =
                args.split_once(',').ok_or_else(|| format!("decimal(P,S) needs two numbers, got `{ty}`"))?;
            let (precision, scale) = (number(precision, "P of decimal(P,S)")?, number(scale, "S of decimal(P,S)")?);
            if !(1..=MAX_DECIMAL_DIGITS).contains(&precision) || scale >= precision {
                return Err(format!(
                    "decimal(P,S) needs 1 <= P <= {MAX_DECIMAL_DIGITS} (stored in 64 bits) and 0 <= S < P (a digit \
                     before the point), not decimal({precision},{scale})"
                ));
            }
            return Ok(Self::Decimal { precision, scale });
        }
        if ty == "string" {
            return Err("string needs its length: string(N)".to_owned());
        }
        Err(format!("unknown type `{ty}`: one of string(N), text, integer, boolean, timestamp, decimal, decimal(P,S)"))
    }
}

/// English plural of a snake_case name, by its last word: `order_item` -> `order_items`, `category` ->
/// `categories`, `box` -> `boxes`. `--plural` overrides it where English does not follow the rule.
pub fn plural_of(name: &str) -> String {
    let vowel_before_y =
        name.strip_suffix('y').and_then(|stem| stem.chars().last()).is_some_and(|c| "aeiou".contains(c));
    if let Some(stem) = name.strip_suffix('y')
        && !vowel_before_y
    {
        return format!("{stem}ies");
    }
    if ["s", "x", "z", "ch", "sh"].iter().any(|end| name.ends_with(end)) {
        return format!("{name}es");
    }
    format!("{name}s")
}

/// `order_item` as words for a person: `order item`.
pub fn words(name: &str) -> String {
    name.replace('_', " ")
}

/// `a` or `an` before `words`, by its first letter (good enough for names; `an hour` is the caller's to fix).
pub fn article(words: &str) -> &'static str {
    if words.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(specs: &[&str]) -> Vec<String> {
        specs.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn types_and_optional_fields_are_read() {
        let entity = Entity::parse(
            "order",
            None,
            &fields(&[
                "name:string(100)",
                "notes:text?",
                "count:integer",
                "paid:boolean",
                "due:timestamp?",
                "amount:decimal",
                "rate:decimal(9,4)",
            ]),
            &Unique::Default,
        )
        .expect("valid");
        assert_eq!(entity.plural, "orders");
        let kinds: Vec<(Kind, bool)> = entity.fields.iter().map(|f| (f.kind, f.optional)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::String(100), false),
                (Kind::Text, true),
                (Kind::Integer, false),
                (Kind::Boolean, false),
                (Kind::Timestamp, true),
                (Kind::Decimal { precision: 18, scale: 2 }, false),
                (Kind::Decimal { precision: 9, scale: 4 }, false),
            ]
        );
        assert_eq!(entity.unique_field().map(|f| f.name.as_str()), Some("name"));
        assert_eq!(entity.fields[4].type_spec(), "timestamp?");
    }

    #[test]
    fn the_unique_field_is_the_first_required_string_unless_told() {
        let unique = |specs: &[&str], how: Unique| {
            Entity::parse("item", None, &fields(specs), &how).map(|e| e.unique_field().map(|f| f.name.clone()))
        };
        assert_eq!(
            unique(&["nick:string(5)?", "code:string(8)", "n:integer"], Unique::Default),
            Ok(Some("code".into()))
        );
        assert_eq!(unique(&["n:integer"], Unique::Default), Ok(None));
        assert_eq!(unique(&["a:string(5)", "b:string(5)"], Unique::Field("b".into())), Ok(Some("b".into())));
        assert_eq!(unique(&["a:string(5)"], Unique::None), Ok(None));
        for (specs, field, reason) in [
            (&["n:integer"][..], "n", "only a required string(N)"),
            (&["t:text"][..], "t", "only a required string(N)"),
            (&["a:string(5)?"][..], "a", "only a required string(N)"),
            (&["a:string(5)"][..], "b", "there is no field `b`"),
            (&["a:string(600)"][..], "a", "at most 512 characters"),
        ] {
            let refused = unique(specs, Unique::Field(field.into())).expect_err(field);
            assert!(refused.contains(reason), "{refused}");
        }
    }

    #[test]
    fn bad_fields_are_refused_with_what_fits() {
        for (spec, reason) in [
            ("name", "is not a field"),
            ("Name:text", "not a valid field name"),
            ("type:text", "not a valid field name"),
            ("id:integer", "taken by the generated code"),
            ("owner_id:integer", "taken by the generated code"),
            ("x:float", "unknown type `float`"),
            ("x:string", "needs its length"),
            ("x:string(0)", "1 to 1024"),
            ("x:string(2000)", "1 to 1024"),
            ("x:string(ten)", "whole number"),
            ("x:decimal(19,2)", "1 <= P <= 18"),
            ("x:decimal(4,4)", "0 <= S < P"),
            ("x:decimal(4)", "two numbers"),
            ("x:integer??", "unknown type"),
        ] {
            let refused = Entity::parse("item", None, &fields(&[spec]), &Unique::Default).expect_err(spec);
            assert!(refused.contains(reason), "{spec}: {refused}");
        }
        let twice = Entity::parse("item", None, &fields(&["a:text", "a:integer"]), &Unique::Default);
        assert!(twice.expect_err("twice").contains("given twice"));
        assert!(Entity::parse("item", None, &[], &Unique::Default).expect_err("none").contains("at least one"));
    }

    #[test]
    fn plurals_follow_english_or_the_flag() {
        for (name, plural) in
            [("order", "orders"), ("category", "categories"), ("day", "days"), ("box", "boxes"), ("batch", "batches")]
        {
            assert_eq!(plural_of(name), plural);
        }
        let person = Entity::parse("person", Some("people"), &fields(&["a:text"]), &Unique::Default).expect("valid");
        assert_eq!(person.plural, "people");
        let same = Entity::parse("sheep", Some("sheep"), &fields(&["a:text"]), &Unique::Default);
        assert!(same.expect_err("same").contains("must differ"));
        assert_eq!((article("order"), article("line item")), ("an", "a"));
    }
}

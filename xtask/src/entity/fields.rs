//! The templates' per-field blocks: what each field type is in each layer (domain type, column, JSON member, test
//! value), one function per place so a new type is one arm in each.

use super::{
    render::Context,
    spec::{Entity, Field, Kind, article, words},
};
use crate::names;

/// The JSON Schema pattern of a short text, as the resources' `name` documents it: not only white space, no
/// control, format or separator characters (those of the Basic Multilingual Plane; `text::unwanted` is the rule).
const TEXT_PATTERN: &str = r#"r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$""#;

/// The example instant of the documents and tests.
const EXAMPLE_INSTANT: &str = "2025-01-31T12:00:00Z";

/// Sets every per-field block and the JSON examples.
pub fn blocks(entity: &Entity, context: &mut Context) {
    let pascal = names::pascal(&entity.name);
    let typed = |field: &Field| format!("{pascal}{}", names::pascal(&field.name));
    let texts: Vec<&Field> = entity.fields.iter().filter(|f| matches!(f.kind, Kind::String(_) | Kind::Text)).collect();
    let has_decimal = entity.has(|k| matches!(k, Kind::Decimal { .. }));
    let has_timestamp = entity.has(|k| *k == Kind::Timestamp);
    let text_types: Vec<String> = texts.iter().map(|f| typed(f)).collect();

    let mut domain = Vec::new();
    if has_decimal {
        domain.push("decimal::Decimal".to_owned());
    }
    domain.extend(["owner::Owner".to_owned(), "principal::Principal".to_owned()]);
    if !texts.is_empty() {
        domain.push("text::{self, TextError}".to_owned());
    }
    if has_timestamp {
        domain.push("timestamp::Timestamp".to_owned());
    }
    context.block("domain_imports", vec![format!("use super::{{{}}};", domain.join(", "))]);

    let plural = &entity.plural;
    let mut store = Vec::new();
    if has_decimal {
        store.push("decimal::Decimal".to_owned());
    }
    let mut own = vec![pascal.clone(), format!("{pascal}Error"), format!("{pascal}Fields"), format!("{pascal}Id")];
    own.extend(text_types.iter().cloned());
    own.push(format!("{pascal}Store"));
    store.push(format!("{plural}::{{{}}}", own.join(", ")));
    store.push("principal::Principal".to_owned());
    if has_timestamp {
        store.push("timestamp::Timestamp".to_owned());
    }
    context.block("store_imports", vec![format!("use crate::domain::{{{}}};", store.join(", "))]);

    let mut v1 = Vec::new();
    if has_decimal {
        v1.push("decimal::Decimal".to_owned());
    }
    let mut own = vec!["self".to_owned(), pascal.clone(), format!("{pascal}Fields"), format!("{pascal}Id")];
    own.extend(text_types.iter().cloned());
    v1.push(format!("{plural}::{{{}}}", own.join(", ")));
    if has_timestamp {
        v1.push("timestamp::Timestamp".to_owned());
    }
    context.block("v1_domain_imports", vec![format!("domain::{{{}}},", v1.join(", "))]);

    let each = |line: &dyn Fn(&Field) -> Vec<String>| entity.fields.iter().flat_map(line).collect::<Vec<_>>();
    let unique = entity.unique_field().map(|f| f.name.clone());
    let is_unique = |field: &Field| unique.as_deref() == Some(field.name.as_str());
    let entity_words = words(&entity.name);
    let owners_plural = words(plural);

    context.block("string_types", texts.iter().flat_map(|f| string_type(&entity_words, &typed(f), f)).collect());
    context.block(
        "fields_struct",
        each(&|f| {
            let unique =
                if is_unique(f) { format!("; unique among its owner's {owners_plural}") } else { String::new() };
            vec![
                format!("/// The {entity_words}'s {}: {}{unique}{}.", words(&f.name), meaning(f.kind), when_unset(f)),
                format!("pub {}: {},", f.name, optional(f, &domain_type(&typed(f), f.kind))),
            ]
        }),
    );
    context.block("sample_fields", each(&|f| vec![format!("{}: {},", f.name, some(f, &domain_sample(&typed(f), f)))]));
    context.block("string_type_tests", texts.iter().flat_map(|f| string_type_test(&typed(f), f)).collect());

    context.block("active_columns", each(&|f| vec![format!("{}: Set({}),", f.name, to_column(f))]));
    context.block("fields_from_row", each(&|f| vec![format!("{}: {},", f.name, from_column(&typed(f), f))]));
    context.block(
        "model_fields",
        each(&|f| {
            let unique = if is_unique(f) { "; unique together with `owner_id`" } else { "" };
            let mut lines = vec![format!("/// `{}`: {}{unique}.", f.name, stored_as(f.kind))];
            if f.kind == Kind::Text {
                lines.push("#[sea_orm(column_type = \"Text\")]".to_owned());
            }
            lines.push(format!("pub {}: {},", f.name, optional(f, column_type(f.kind))));
            lines
        }),
    );
    let table = names::pascal(plural);
    context.block("iden_variants", each(&|f| vec![format!("{},", names::pascal(&f.name))]));
    context.block("columns", each(&|f| vec![column(&table, f)]));

    context.block("view_from_fields", each(&|f| vec![format!("{}: {},", f.name, to_view(&typed(f), f))]));
    context.block("valid_fields", each(&|f| vec![format!("{}: {},", f.name, from_input(&typed(f), f))]));

    context.block(
        "input_fields",
        each(&|f| {
            let unique =
                if is_unique(f) { format!("; unique among the caller's {owners_plural}") } else { String::new() };
            let mut lines = vec![format!("/// {}{unique}{}.", input_doc(f.kind), when_unset(f))];
            lines.extend(input_schema(f.kind));
            if f.kind == Kind::Integer {
                // JSON Schema's integers include `7.0`, which serde's i64 refuses.
                lines.push(if f.optional {
                    "#[serde(default, deserialize_with = \"crate::whole_number::option::deserialize\")]".to_owned()
                } else {
                    "#[serde(deserialize_with = \"crate::whole_number::deserialize\")]".to_owned()
                });
            }
            lines.push(format!("pub {}: {},", f.name, optional(f, wire_type(f.kind))));
            lines
        }),
    );
    context.block(
        "view_fields",
        each(&|f| {
            let mut lines = vec![format!("/// {}{}.", capitalised(&meaning(f.kind)), when_unset(f))];
            lines.extend(view_schema(f.kind));
            lines.push(format!("pub {}: {},", f.name, optional(f, wire_type(f.kind))));
            lines
        }),
    );
    let example: Vec<String> = entity.fields.iter().map(|f| format!("\"{}\": {}", f.name, example(f))).collect();
    context.value("input_example", format!("{{{}}}", example.join(", ")));
    context.value(
        "view_example",
        format!(
            "{{\"id\": 1, {}, \"owner\": {{\"id\": 1, \"client_id\": \"example-client\", \"name\": \"ada\"}}, \"etag\": \"\\\"1.1\\\"\"}}",
            example.join(", ")
        ),
    );

    context.block("sample_body", each(&|f| vec![format!("\"{}\": {},", f.name, body_sample(f))]));
    context.block("invalid_cases", each(&|f| invalid_cases(f)));
}

/// `Option<ty>` for an optional field.
fn optional(field: &Field, ty: &str) -> String {
    if field.optional { format!("Option<{ty}>") } else { ty.to_owned() }
}

/// `Some(value)` for an optional field.
fn some(field: &Field, value: &str) -> String {
    if field.optional { format!("Some({value})") } else { value.to_owned() }
}

fn when_unset(field: &Field) -> &'static str {
    if field.optional { "; `None` when not set" } else { "" }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// What a value of `kind` is, for a person.
fn meaning(kind: Kind) -> String {
    match kind {
        Kind::String(chars) => format!("at most {chars} characters, trimmed"),
        Kind::Text => "free text, verbatim".to_owned(),
        Kind::Integer => "a whole number".to_owned(),
        Kind::Boolean => "yes or no".to_owned(),
        Kind::Timestamp => "a point in time, to the microsecond".to_owned(),
        Kind::Decimal { precision, scale } => {
            format!("an exact decimal number of at most {precision} digits, {scale} after the point")
        }
    }
}

fn domain_type(typed: &str, kind: Kind) -> String {
    match kind {
        Kind::String(_) | Kind::Text => typed.to_owned(),
        Kind::Integer => "i64".to_owned(),
        Kind::Boolean => "bool".to_owned(),
        Kind::Timestamp => "Timestamp".to_owned(),
        Kind::Decimal { precision, scale } => format!("Decimal<{precision}, {scale}>"),
    }
}

/// The validated type of a text field.
fn string_type(entity_words: &str, typed: &str, field: &Field) -> Vec<String> {
    let field_words = words(&field.name);
    let an = article(entity_words);
    let mut lines = vec![String::new()];
    match field.kind {
        Kind::String(chars) => lines.extend([
            format!(
                "/// {} {entity_words}'s {field_words}: at most [`{typed}::MAX_CHARS`] characters as sent, not only white space,",
                capitalised(an)
            ),
            "/// no control, format or separator characters; stored in NFC and trimmed. Holding one proves the checks ran.".to_owned(),
            "#[derive(Debug, Clone, PartialEq, Eq, Hash)]".to_owned(),
            format!("pub struct {typed}(String);"),
            String::new(),
            format!("impl {typed} {{"),
            format!("    /// Longest accepted {field_words}, in characters (Unicode scalar values), as its column holds."),
            format!("    pub const MAX_CHARS: usize = {chars};"),
            String::new(),
            "    /// Checks the text as sent, which is what the OpenAPI document describes, then trims it.".to_owned(),
            "    pub fn parse(raw: &str) -> Result<Self, TextError> {".to_owned(),
            "        text::bounded(raw, Self::MAX_CHARS).map(Self)".to_owned(),
            "    }".to_owned(),
        ]),
        _ => lines.extend([
            format!(
                "/// {} {entity_words}'s {field_words}: free text, kept verbatim, without NUL characters.",
                capitalised(an)
            ),
            "#[derive(Debug, Clone, PartialEq, Eq, Hash)]".to_owned(),
            format!("pub struct {typed}(String);"),
            String::new(),
            format!("impl {typed} {{"),
            "    /// Checks the text as sent.".to_owned(),
            "    pub fn parse(raw: &str) -> Result<Self, TextError> {".to_owned(),
            "        text::free(raw).map(Self)".to_owned(),
            "    }".to_owned(),
        ]),
    }
    lines.extend([
        String::new(),
        "    /// Wraps a value read from storage, where only parsed values are written.".to_owned(),
        "    pub fn from_stored(value: String) -> Self {".to_owned(),
        "        Self(value)".to_owned(),
        "    }".to_owned(),
        String::new(),
        "    /// The text.".to_owned(),
        "    pub fn as_str(&self) -> &str {".to_owned(),
        "        &self.0".to_owned(),
        "    }".to_owned(),
        String::new(),
        "    /// The text, owned.".to_owned(),
        "    pub fn into_string(self) -> String {".to_owned(),
        "        self.0".to_owned(),
        "    }".to_owned(),
        "}".to_owned(),
        String::new(),
        format!("impl fmt::Display for {typed} {{"),
        "    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {".to_owned(),
        "        f.write_str(&self.0)".to_owned(),
        "    }".to_owned(),
        "}".to_owned(),
    ]);
    lines
}

/// A short text value for `n` (a digit) that fits `chars`: the field's words as far as they fit, then `n`.
fn text_prefix(field: &Field, chars: u32) -> String {
    format!("{} ", words(&field.name)).chars().take(chars.saturating_sub(2) as usize).collect()
}

fn domain_sample(typed: &str, field: &Field) -> String {
    match field.kind {
        Kind::String(chars) => {
            format!("{typed}::parse(&format!(\"{}{{n}}\")).expect(\"valid\")", text_prefix(field, chars))
        }
        Kind::Text => format!("{typed}::parse(&format!(\"{} {{n}}\")).expect(\"valid\")", words(&field.name)),
        Kind::Integer => "i64::from(n)".to_owned(),
        Kind::Boolean => "n.is_multiple_of(2)".to_owned(),
        Kind::Timestamp => "Timestamp::from_stored(i64::from(n) * 1_000_000).expect(\"in range\")".to_owned(),
        Kind::Decimal { .. } => "Decimal::from_stored(i64::from(n) * 25)".to_owned(),
    }
}

/// The unit test of a text field's validated type.
fn string_type_test(typed: &str, field: &Field) -> Vec<String> {
    let name = &field.name;
    let mut lines = vec![String::new(), "#[test]".to_owned()];
    match field.kind {
        Kind::String(chars) => {
            lines.push(format!("fn {name}_is_checked_as_sent_and_stored_trimmed() {{"));
            if chars >= 3 {
                lines.push(format!(
                    "    assert_eq!({typed}::parse(\" x \").map({typed}::into_string), Ok(\"x\".to_owned()));"
                ));
            }
            lines.extend([
                format!("    let longest = \"é\".repeat({typed}::MAX_CHARS);"),
                format!("    assert_eq!({typed}::parse(&longest).map({typed}::into_string), Ok(longest.clone()));"),
                format!(
                    "    assert_eq!({typed}::parse(&format!(\"{{longest}}é\")), Err(TextError::TooLong {{ max: {chars}, actual: {} }}));",
                    chars + 1
                ),
                format!("    assert_eq!({typed}::parse(\" \"), Err(TextError::Empty));"),
                format!("    assert!(matches!({typed}::parse(\"\\n\"), Err(TextError::Character(_))));"),
                format!("    assert!(matches!({typed}::parse(\"\\u{{202E}}\"), Err(TextError::Character(_))));"),
            ]);
        }
        _ => lines.extend([
            format!("fn {name}_is_kept_verbatim_without_nul() {{"),
            "    let text = \" line one\\n\\tline two \";".to_owned(),
            format!("    assert_eq!({typed}::parse(text).map({typed}::into_string), Ok(text.to_owned()));"),
            format!("    assert_eq!({typed}::parse(\"a\\u{{0}}b\"), Err(TextError::Nul));"),
        ]),
    }
    lines.push("}".to_owned());
    lines
}

/// How the column is kept, for the SeaORM model's field doc.
fn stored_as(kind: Kind) -> String {
    match kind {
        Kind::String(chars) => format!("at most {chars} characters, trimmed"),
        Kind::Text => "free text, verbatim".to_owned(),
        Kind::Integer => "a whole number".to_owned(),
        Kind::Boolean => "yes or no".to_owned(),
        Kind::Timestamp => "microseconds since 1970-01-01T00:00:00Z (see `domain::timestamp`)".to_owned(),
        Kind::Decimal { precision, scale } => format!(
            "an exact decimal({precision},{scale}) in units of 10^-{scale} (see `domain::decimal`; {} is {})",
            decimal_text(scale),
            decimal_units(scale)
        ),
    }
}

/// `1.50` at scale 2: the example decimal of the documents.
fn decimal_text(scale: u32) -> String {
    if scale == 0 { "1".to_owned() } else { format!("1.{:0<width$}", "5", width = scale as usize) }
}

fn decimal_units(scale: u32) -> String {
    if scale == 0 { "1".to_owned() } else { format!("1{:0<width$}", "5", width = scale as usize) }
}

fn column_type(kind: Kind) -> &'static str {
    match kind {
        Kind::String(_) | Kind::Text => "String",
        Kind::Boolean => "bool",
        Kind::Integer | Kind::Timestamp | Kind::Decimal { .. } => "i64",
    }
}

fn column(table: &str, field: &Field) -> String {
    let iden = format!("{table}::{}", names::pascal(&field.name));
    let def = match field.kind {
        Kind::String(chars) => format!("ColumnDef::new({iden}).string_len({chars})"),
        Kind::Text => format!("free_text({iden}, backend)"),
        Kind::Boolean => format!("ColumnDef::new({iden}).boolean()"),
        Kind::Integer | Kind::Timestamp | Kind::Decimal { .. } => format!("ColumnDef::new({iden}).big_integer()"),
    };
    format!(".col({def}.{}())", if field.optional { "null" } else { "not_null" })
}

fn to_column(field: &Field) -> String {
    let value = format!("fields.{}", field.name);
    match (field.kind, field.optional) {
        (Kind::String(_) | Kind::Text, false) => format!("{value}.as_str().to_owned()"),
        (Kind::String(_) | Kind::Text, true) => format!("{value}.as_ref().map(|text| text.as_str().to_owned())"),
        (Kind::Integer | Kind::Boolean, _) => value,
        (Kind::Timestamp, false) => format!("{value}.micros()"),
        (Kind::Timestamp, true) => format!("{value}.map(Timestamp::micros)"),
        (Kind::Decimal { .. }, false) => format!("{value}.units()"),
        (Kind::Decimal { .. }, true) => format!("{value}.map(Decimal::units)"),
    }
}

fn from_column(typed: &str, field: &Field) -> String {
    let (name, value) = (&field.name, format!("row.{}", field.name));
    match (field.kind, field.optional) {
        (Kind::String(_) | Kind::Text, false) => format!("{typed}::from_stored({value})"),
        (Kind::String(_) | Kind::Text, true) => format!("{value}.map({typed}::from_stored)"),
        (Kind::Integer | Kind::Boolean, _) => value,
        (Kind::Timestamp, false) => format!("stored_timestamp(id, \"{name}\", {value})?"),
        (Kind::Timestamp, true) => {
            format!("{value}.map(|micros| stored_timestamp(id, \"{name}\", micros)).transpose()?")
        }
        (Kind::Decimal { .. }, false) => format!("Decimal::from_stored({value})"),
        (Kind::Decimal { .. }, true) => format!("{value}.map(Decimal::from_stored)"),
    }
}

fn to_view(typed: &str, field: &Field) -> String {
    let value = format!("fields.{}", field.name);
    match (field.kind, field.optional) {
        (Kind::String(_) | Kind::Text, false) => format!("{value}.into_string()"),
        (Kind::String(_) | Kind::Text, true) => format!("{value}.map({typed}::into_string)"),
        (Kind::Integer | Kind::Boolean, _) => value,
        (Kind::Timestamp | Kind::Decimal { .. }, false) => format!("{value}.to_string()"),
        (Kind::Timestamp | Kind::Decimal { .. }, true) => format!("{value}.map(|value| value.to_string())"),
    }
}

fn from_input(typed: &str, field: &Field) -> String {
    let name = &field.name;
    let parser = match field.kind {
        Kind::String(_) | Kind::Text => format!("{typed}::parse"),
        Kind::Timestamp => "Timestamp::parse".to_owned(),
        Kind::Decimal { .. } => "Decimal::parse".to_owned(),
        Kind::Integer | Kind::Boolean => return format!("input.{name}"),
    };
    let invalid = format!("map_err(|error| invalid(\"{name}\", &error))?");
    if field.optional {
        format!("input.{name}.as_deref().map({parser}).transpose().{invalid}")
    } else {
        format!("{parser}(&input.{name}).{invalid}")
    }
}

fn wire_type(kind: Kind) -> &'static str {
    match kind {
        Kind::String(_) | Kind::Text | Kind::Timestamp | Kind::Decimal { .. } => "String",
        Kind::Integer => "i64",
        Kind::Boolean => "bool",
    }
}

fn input_doc(kind: Kind) -> String {
    match kind {
        Kind::String(chars) => format!(
            "At most {chars} characters, not only white space, no control, format or separator characters (stored in NFC \
             without surrounding white space)"
        ),
        Kind::Text => {
            "Free text, kept verbatim (line breaks and surrounding white space included), without NUL".to_owned()
        }
        Kind::Integer => "A whole number (64 bits)".to_owned(),
        Kind::Boolean => "Yes or no".to_owned(),
        Kind::Timestamp => {
            "A point in time: RFC 3339 with an offset, at most to the microsecond (answers are in UTC)".to_owned()
        }
        Kind::Decimal { precision, scale } => format!(
            "An exact decimal number written as a string (never a JSON number, which is a float): at most {} digits \
             before the point and {scale} after it",
            precision - scale
        ),
    }
}

fn decimal_pattern(precision: u32, scale: u32) -> String {
    if scale == 0 {
        format!("r\"^-?[0-9]{{1,{precision}}}$\"")
    } else {
        format!("r\"^-?[0-9]{{1,{}}}(\\.[0-9]{{1,{scale}}})?$\"", precision - scale)
    }
}

fn input_schema(kind: Kind) -> Vec<String> {
    match kind {
        Kind::String(chars) => {
            vec![format!("#[schema(min_length = 1, max_length = {chars}, pattern = {TEXT_PATTERN})]")]
        }
        Kind::Text => vec![r#"#[schema(pattern = r"^[^\u0000]*$")]"#.to_owned()],
        other => view_schema(other),
    }
}

fn view_schema(kind: Kind) -> Vec<String> {
    match kind {
        Kind::Timestamp => vec![format!("#[schema(format = DateTime, example = \"{EXAMPLE_INSTANT}\")]")],
        Kind::Decimal { precision, scale } => vec![format!(
            "#[schema(pattern = {}, example = \"{}\")]",
            decimal_pattern(precision, scale),
            decimal_text(scale)
        )],
        _ => Vec::new(),
    }
}

/// The field's value in the documents' examples, as JSON.
fn example(field: &Field) -> String {
    match field.kind {
        Kind::String(chars) => {
            format!("\"{}\"", format!("{} 1", words(&field.name)).chars().take(chars as usize).collect::<String>())
        }
        Kind::Text => "\"free text\"".to_owned(),
        Kind::Integer => "42".to_owned(),
        Kind::Boolean => "true".to_owned(),
        Kind::Timestamp => format!("\"{EXAMPLE_INSTANT}\""),
        Kind::Decimal { scale, .. } => format!("\"{}\"", decimal_text(scale)),
    }
}

/// The field's value in the integration tests' `body(n)`, written as the API answers it.
fn body_sample(field: &Field) -> String {
    match field.kind {
        Kind::String(chars) => format!("format!(\"{}{{n}}\")", text_prefix(field, chars)),
        Kind::Text => format!("format!(\"{} {{n}}\\n  kept verbatim \")", words(&field.name)),
        Kind::Integer => "i64::from(n) * 10".to_owned(),
        Kind::Boolean => "n.is_multiple_of(2)".to_owned(),
        Kind::Timestamp => "format!(\"2030-01-{:02}T12:30:00Z\", n + 1)".to_owned(),
        Kind::Decimal { scale: 0, .. } => "n.to_string()".to_owned(),
        Kind::Decimal { scale, .. } => {
            format!(
                "format!(\"{{n}}.{}\")",
                format!("{:0<width$}", "25", width = scale as usize).get(..scale as usize).unwrap_or("2")
            )
        }
    }
}

/// The integration test's refusals of one field.
fn invalid_cases(field: &Field) -> Vec<String> {
    let refused = |value: &str| format!("alice.refused(with(\"{0}\", json!({value})), \"{0}\").await;", field.name);
    match field.kind {
        Kind::String(chars) => vec![
            format!(
                "assert_eq!(alice.refused(with(\"{0}\", json!(\"n\".repeat({1}))), \"{0}\").await, \"must be at most {chars} characters, got {1}\");",
                field.name,
                chars + 1
            ),
            refused("\" \""),
        ],
        Kind::Text => vec![refused("\"a\\u{0}b\"")],
        Kind::Integer => vec![refused("\"seven\""), refused("1.5")],
        Kind::Boolean => vec![refused("\"yes\"")],
        Kind::Timestamp => vec![refused("\"2030-01-01T12:30:00\""), refused("\"yesterday\"")],
        Kind::Decimal { scale, .. } => vec![
            refused("1.5"),
            refused("\"1e3\""),
            format!(
                "assert_eq!(alice.refused(with(\"{0}\", json!(\"0.{1}\")), \"{0}\").await, \"must have at most {scale} digits after the decimal point\");",
                field.name,
                "1".repeat(scale as usize + 1)
            ),
        ],
    }
}

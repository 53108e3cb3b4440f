//! `cargo xtask new-entity <name> --field NAME:TYPE ...`: an owned entity end to end, following the resources' code
//! file for file: its migration (listed in the Migrator), its SeaORM entity, its domain (validated types, rules and
//! store trait, tested on a fake store), its SeaORM store on the shared `DbHandle`, its API v1 (list with paging and
//! `Link`, get, create, replace, delete) with its `HttpError` answers and the `FromRef` that hands handlers the store,
//! its request and response bodies in `api-types`, its integration tests on every engine, the docs test's paths and
//! the regenerated `openapi.json`. Like `rename`, it needs a clean work tree, and every refusal happens before the
//! first file is written.

mod fields;
mod render;
pub mod spec;

use std::{fs, path::Path};

use self::{
    render::Context,
    spec::{Entity, Kind, Unique, article, words},
};
use crate::{generate, names, text, workspace};

/// The workspace's `max_width` (rustfmt.toml), which generated comments are wrapped to as well.
const WIDTH: usize = 120;

const SERVER_SRC: &str = "crates/server/src";
const MIGRATIONS: &str = "crates/migration/src";
const MIGRATOR: &str = "crates/migration/src/lib.rs";
const API_TYPES: &str = "crates/api-types/src/lib.rs";

/// Where the generated modules go; a name or plural that is already a module in one of them is refused, so nothing
/// is overwritten or shadowed (`owner`, `resource`, `greeting`, `auth`, `handle`, ...).
const MODULE_FOLDERS: &[&str] = &[
    "crates/server/src",
    "crates/server/src/apis",
    "crates/server/src/domain",
    "crates/server/src/db",
    "crates/server/src/db/entity",
    "crates/server/tests/api",
    "crates/api-types/src",
];

/// What `new-entity` was asked.
#[derive(Debug)]
pub struct Request<'a> {
    /// The entity's name.
    pub name: &'a str,
    /// Its plural, when English rules do not make it.
    pub plural: Option<&'a str>,
    /// `NAME:TYPE` specs.
    pub fields: &'a [String],
    /// Which field is unique per owner.
    pub unique: Unique,
    /// Whether to regenerate `openapi.json`.
    pub regenerate: bool,
}

/// Adds the entity `request` describes to the checkout at `root`.
pub fn new_entity(root: &Path, request: &Request<'_>) -> Result<(), String> {
    let entity = Entity::parse(request.name, request.plural, request.fields, &request.unique)?;
    check_names_are_free(root, &entity)?;
    workspace::ensure_clean(root)?;
    let migration = next_migration(root, &entity)?;
    let context = context(&entity, &migration);

    let mut plan = generate::Plan::new();
    let (name, plural) = (entity.name.as_str(), entity.plural.as_str());
    plan.create(format!("{MIGRATIONS}/{}.rs", migration.module), context.render_wrapped(MIGRATION, WIDTH));
    plan.change(MIGRATOR, with_migration(&workspace::read(root, MIGRATOR)?, &migration.module)?);
    plan.format(MIGRATOR);
    plan.create(format!("{SERVER_SRC}/db/entity/{name}.rs"), context.render_wrapped(SEAORM_ENTITY, WIDTH));
    plan.change_declaring(root, &format!("{SERVER_SRC}/db/entity/mod.rs"), &format!("pub mod {name};"))?;
    plan.create(format!("{SERVER_SRC}/domain/{plural}.rs"), context.render_wrapped(DOMAIN, WIDTH));
    plan.change_declaring(root, &format!("{SERVER_SRC}/domain/mod.rs"), &format!("pub mod {plural};"))?;
    plan.create(format!("{SERVER_SRC}/db/{plural}.rs"), context.render_wrapped(STORE, WIDTH));
    plan.change_declaring(root, &format!("{SERVER_SRC}/db/mod.rs"), &format!("pub mod {plural};"))?;
    plan.create(format!("{SERVER_SRC}/apis/{name}/mod.rs"), context.render_wrapped(API_MODULE, WIDTH));
    plan.create(format!("{SERVER_SRC}/apis/{name}/v1.rs"), context.render_wrapped(API_V1, WIDTH));
    let description = format!("Owned {}: read scope to read, write scope to change", words(plural));
    plan.change(generate::REGISTRY, generate::registry_with_api(root, name, &description)?);
    plan.create(format!("crates/api-types/src/{name}.rs"), context.render_wrapped(API_TYPES_MODULE, WIDTH));
    plan.change(API_TYPES, with_bodies(&workspace::read(root, API_TYPES)?, &entity)?);
    plan.format(API_TYPES);
    plan.create(format!("{}/{name}.rs", generate::TESTS), context.render_wrapped(TESTS, WIDTH));
    plan.change(generate::TEST_MAIN, generate::register_test_module(root, name)?);
    let paths = vec![format!("\"/api/{name}/v1\","), format!("\"/api/{name}/v1/{{id}}\",")];
    if let Some(docs) = generate::documented_paths(root, |_| (String::new(), paths.clone()))? {
        plan.change(generate::DOCS_TEST, docs);
    }
    plan.apply(root, request.regenerate)?;
    println!(
        "next: review it with `git status` and `git diff`; `cargo test -p {} --test api -- {name}::` tests it",
        server(root)?
    );
    println!("      (on PostgreSQL and MariaDB too when TEST_POSTGRES_URL and TEST_MYSQL_URL are set); its rules are");
    println!("      in {SERVER_SRC}/domain/{plural}.rs, its answers in {SERVER_SRC}/apis/{name}/");
    Ok(())
}

fn server(root: &Path) -> Result<String, String> {
    workspace::package_name(root, workspace::SERVER_MANIFEST)
}

const MIGRATION: &str = include_str!("../../templates/entity/migration.rs.tmpl");
const SEAORM_ENTITY: &str = include_str!("../../templates/entity/entity.rs.tmpl");
const DOMAIN: &str = include_str!("../../templates/entity/domain.rs.tmpl");
const STORE: &str = include_str!("../../templates/entity/store.rs.tmpl");
const API_MODULE: &str = include_str!("../../templates/entity/api_mod.rs.tmpl");
const API_V1: &str = include_str!("../../templates/entity/api_v1.rs.tmpl");
const API_TYPES_MODULE: &str = include_str!("../../templates/entity/api_types.rs.tmpl");
const TESTS: &str = include_str!("../../templates/entity/test.rs.tmpl");

/// The migration a new entity gets: the next number after the highest there is.
struct Migration {
    number: u32,
    /// `m0003_orders`.
    module: String,
}

fn next_migration(root: &Path, entity: &Entity) -> Result<Migration, String> {
    let listing = fs::read_dir(root.join(MIGRATIONS)).map_err(|e| format!("cannot list {MIGRATIONS}: {e}"))?;
    let mut highest = 0;
    for name in listing.filter_map(|entry| entry.ok()?.file_name().into_string().ok()) {
        let Some(stem) = name.strip_suffix(".rs") else { continue };
        let Some((number, table)) = stem.strip_prefix('m').and_then(|rest| rest.split_once('_')) else { continue };
        let Ok(number) = number.parse::<u32>() else { continue };
        if table == entity.plural {
            return Err(format!("{MIGRATIONS}/{name} already creates a `{}` table", entity.plural));
        }
        highest = highest.max(number);
    }
    let number = highest + 1;
    Ok(Migration { number, module: format!("m{number:04}_{}", entity.plural) })
}

/// Refuses a name or plural that is a module already, a crate the server uses, or too long for the constraint
/// names the engines accept.
fn check_names_are_free(root: &Path, entity: &Entity) -> Result<(), String> {
    for folder in MODULE_FOLDERS {
        let listing = fs::read_dir(root.join(folder)).map_err(|e| format!("cannot list {folder}: {e}"))?;
        for file in listing.filter_map(|entry| entry.ok()?.file_name().into_string().ok()) {
            let module = file.strip_suffix(".rs").unwrap_or(&file);
            for (what, taken) in [("name", &entity.name), ("plural", &entity.plural)] {
                if module == taken {
                    return Err(format!(
                        "the {what} `{taken}` is taken: {folder}/{file} already exists (choose another name, or --plural)"
                    ));
                }
            }
        }
    }
    let manifest = workspace::read(root, workspace::SERVER_MANIFEST)?;
    let crates = dependency_names(&manifest);
    for taken in [&entity.name, &entity.plural] {
        if crates.iter().any(|c| c == taken) || taken == "tests" || names::version(taken).is_ok() {
            return Err(format!(
                "`{taken}` is taken: a crate the server uses or a name the generated modules use already"
            ));
        }
    }
    if let Some(field) = entity.unique_field() {
        let index = unique_index(entity, &field.name);
        if index.len() > 63 {
            return Err(format!(
                "the unique index `{index}` is longer than the 63 characters PostgreSQL keeps; shorten the plural or the field"
            ));
        }
    }
    Ok(())
}

/// The dependency names of a manifest (`[dependencies]` and `[dev-dependencies]`), as Rust spells them.
fn dependency_names(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]" || line == "[dev-dependencies]";
        } else if in_dependencies && let Some((key, _)) = line.split_once('=') {
            // `sea-orm.workspace = true` names `sea-orm`.
            let key = key.trim().split('.').next().unwrap_or_default();
            found.push(key.replace('-', "_"));
        }
    }
    found
}

fn unique_index(entity: &Entity, field: &str) -> String {
    format!("uq_{}_owner_{field}", entity.plural)
}

/// The Migrator's source with `module` declared and appended to the history.
fn with_migration(source: &str, module: &str) -> Result<String, String> {
    let declared = text::insert_declaration(source, &format!("mod {module};"))
        .ok_or_else(|| format!("{MIGRATOR} has no `mod m...;` lines"))?;
    let last = declared
        .rfind("::Migration)")
        .ok_or_else(|| format!("{MIGRATOR} lists no `Box::new(m...::Migration)` in its migrations"))?;
    let at = last + "::Migration)".len();
    Ok(format!("{}, Box::new({module}::Migration){}", &declared[..at], &declared[at..]))
}

/// api-types' root with the entity's module declared and its bodies re-exported beside the other entities'.
fn with_bodies(source: &str, entity: &Entity) -> Result<String, String> {
    let name = &entity.name;
    let pascal = names::pascal(name);
    let module = format!("pub mod {name};");
    let export = format!("pub use {name}::{{{pascal}Input, {pascal}List, {pascal}View}};");
    let is_export = |line: &str| line.starts_with("pub use ") && line.ends_with("};");
    let declared = match text::insert_declaration(source, &module) {
        Some(declared) => declared,
        // The first entity: its module goes after the imports, with a blank line either side.
        None => {
            text::insert_after_last(source, |l| l.starts_with("use ") && l.ends_with(';'), &[String::new(), module])
                .ok_or_else(|| format!("{API_TYPES} has no `use` lines to put `pub mod {name};` after"))?
        }
    };
    let is_module = |line: &str| line.starts_with("pub mod ") && line.ends_with(';');
    match text::insert_among(&declared, is_export, &export) {
        Some(exported) => Ok(exported),
        // The first entity's re-export: after the module declarations, with a blank line between.
        None => text::insert_after_last(&declared, is_module, &[String::new(), export])
            .ok_or_else(|| format!("{API_TYPES}: `pub mod {name};` was not inserted")),
    }
}

/// Every value, flag and block the templates use.
fn context(entity: &Entity, migration: &Migration) -> Context {
    let mut context = Context::default();
    let (name, plural) = (entity.name.as_str(), entity.plural.as_str());
    let pascal = names::pascal(name);
    let (singular_words, plural_words) = (words(name), words(plural));
    let an = article(&singular_words);
    context.value("entity", name);
    context.value("entities", plural);
    context.value("Entity", pascal.clone());
    context.value("Entities", names::pascal(plural));
    context.value("entity_words", singular_words.clone());
    context.value("entities_words", plural_words.clone());
    context.value("Entity_words", capitalised(&singular_words));
    context.value("Entities_words", capitalised(&plural_words));
    context.value("an_entity_words", format!("{an} {singular_words}"));
    context.value("An_entity_words", capitalised(&format!("{an} {singular_words}")));
    context.value("an_entity", format!("{an}_{name}"));
    context.value("migration", migration.module.clone());
    context.value("number", migration.number.to_string());
    let unique = entity.unique_field();
    context.flag("unique", unique.is_some());
    if let Some(field) = unique {
        let field_words = words(&field.name);
        context.value("unique", field.name.clone());
        context.value("Unique", names::pascal(&field.name));
        context.value("unique_words", field_words.clone());
        context.value("an_unique_words", format!("{} {field_words}", article(&field_words)));
        context.value("an_unique", format!("{}_{}", article(&field_words), field.name));
        context.value("Unique_type", format!("{pascal}{}", names::pascal(&field.name)));
        context.value("unique_index", unique_index(entity, &field.name));
        context.value("unique_clause", format!(", its {field_words} unique per owner"));
        context.value("sql_err", "SqlErr, ");
    } else {
        context.value("unique_clause", "");
        context.value("sql_err", "");
    }
    context.flag("text", entity.has(|k| *k == Kind::Text));
    context.flag("timestamp", entity.has(|k| *k == Kind::Timestamp));
    context.flag("parsed", entity.has(|k| !matches!(k, Kind::Integer | Kind::Boolean)));
    let quoted = |optional: bool| -> Vec<String> {
        entity.fields.iter().filter(|f| f.optional == optional).map(|f| format!("\"{}\"", f.name)).collect()
    };
    for (optional, flag, count, list) in
        [(false, "required", "required_count", "required_list"), (true, "optional", "optional_count", "optional_list")]
    {
        let members = quoted(optional);
        context.flag(flag, !members.is_empty());
        context.value(count, members.len().to_string());
        context.value(list, members.join(", "));
    }
    fields::blocks(entity, &mut context);
    context
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrator_lists_the_new_migration_last() {
        let source = "mod m0001_a;\nmod m0002_b;\n\nfn migrations() {\n    vec![Box::new(m0001_a::Migration), Box::new(m0002_b::Migration)]\n}\n";
        assert_eq!(
            with_migration(source, "m0003_orders").expect("edited"),
            "mod m0001_a;\nmod m0002_b;\nmod m0003_orders;\n\nfn migrations() {\n    vec![Box::new(m0001_a::Migration), Box::new(m0002_b::Migration), Box::new(m0003_orders::Migration)]\n}\n"
        );
    }

    #[test]
    fn bodies_are_declared_and_exported_beside_the_other_entities() {
        let entity = |name: &str| Entity::parse(name, None, &["a:text".to_owned()], &Unique::Default).expect("valid");
        let first =
            with_bodies("//! doc\n\nuse serde::Serialize;\nuse utoipa::ToSchema;\n\npub struct X;\n", &entity("order"))
                .expect("first");
        assert_eq!(
            first,
            "//! doc\n\nuse serde::Serialize;\nuse utoipa::ToSchema;\n\npub mod order;\n\npub use order::{OrderInput, OrderList, OrderView};\n\npub struct X;\n"
        );
        let beside = with_bodies("use x;\n\npub mod whole_number;\n\n/// Doc.\n", &entity("order")).expect("beside");
        assert_eq!(
            beside,
            "use x;\n\npub mod order;\npub mod whole_number;\n\npub use order::{OrderInput, OrderList, OrderView};\n\n/// Doc.\n"
        );
        let second = with_bodies(&first, &entity("invoice")).expect("second");
        assert!(
            second.contains("pub mod invoice;\npub mod order;\n\npub use invoice::{InvoiceInput, InvoiceList, InvoiceView};\npub use order::{OrderInput, OrderList, OrderView};\n"),
            "{second}"
        );
    }

    #[test]
    fn dependencies_are_read_from_both_tables() {
        let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nsea-orm.workspace = true\ntime = \"0.3\"\n\n[dev-dependencies]\ntempfile = \"3\"\n\n[features]\njemalloc = []\n";
        assert_eq!(dependency_names(manifest), ["sea_orm", "time", "tempfile"].map(String::from));
    }
}

//! The one migration history of rust-api-axum: each migration is defined once in Rust and emits the SQL of
//! whichever engine it runs on (SQLite, PostgreSQL, MySQL/MariaDB), like the Flask original's Alembic revisions.
//! Every migration has a working `down`.

pub use sea_orm_migration::{MigrationStatus, prelude::*};

mod m0001_resources;
mod m0002_owners_and_resources;
mod m0003_resource_version;
mod m0004_idempotency_keys;

/// The migration history, oldest first. Append; never edit a migration that has shipped.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_resources::Migration),
            Box::new(m0002_owners_and_resources::Migration),
            Box::new(m0003_resource_version::Migration),
            Box::new(m0004_idempotency_keys::Migration),
        ]
    }
}

/// Table options every table gets: on MySQL/MariaDB, full Unicode and a binary collation, so names compare
/// (and are unique) exactly as on PostgreSQL and SQLite instead of case- and accent-insensitively.
pub(crate) fn portable(table: &mut TableCreateStatement, backend: sea_orm::DbBackend) -> &mut TableCreateStatement {
    if backend == sea_orm::DbBackend::MySql {
        table.character_set("utf8mb4").collate("utf8mb4_bin");
    }
    table
}

/// Identifiers shared by the migrations.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Resources {
    Table,
    Id,
    Name,
    OwnerId,
    Version,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Owners {
    Table,
    Id,
    Subject,
    ClientId,
    Name,
}

//! Revision 2: resources belong to owners. Owners are keyed on the token subject (the original keyed them on the
//! OAuth client, so all users of one client shared everything), and the unique (owner, name) constraint the
//! original declared but never created is created here.
//!
//! `resources` is rebuilt rather than altered, because SQLite cannot add a foreign key to an existing table; rows
//! from revision 1 keep their ids and names and go to a placeholder owner, so upgrading loses nothing.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{DbBackend, Statement},
};

use crate::{Owners, Resources, portable};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Subject of the owner that rows from revision 1 are given.
pub const UNOWNED_SUBJECT: &str = "urn:rust-api-axum:unowned";

#[derive(DeriveIden)]
enum ResourcesRebuilt {
    #[sea_orm(iden = "resources_rebuilt")]
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing: SQLite and PostgreSQL run DDL in transactions (MySQL commits each statement regardless).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                portable(&mut Table::create(), backend)
                    .table(Owners::Table)
                    .col(ColumnDef::new(Owners::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Owners::Subject).string_len(255).not_null().unique_key())
                    .col(ColumnDef::new(Owners::ClientId).string_len(255).null())
                    .col(ColumnDef::new(Owners::Name).string_len(255).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                portable(&mut Table::create(), backend)
                    .table(ResourcesRebuilt::Table)
                    .col(ColumnDef::new(Resources::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Resources::OwnerId).big_integer().not_null())
                    .col(ColumnDef::new(Resources::Name).string_len(255).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_resources_owner")
                            .from(ResourcesRebuilt::Table, Resources::OwnerId)
                            .to(Owners::Table, Owners::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .index(
                        Index::create()
                            .name("uq_resources_owner_name")
                            .col(Resources::OwnerId)
                            .col(Resources::Name)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        if has_rows(manager, Resources::Table).await? {
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(Owners::Table)
                        .columns([Owners::Subject, Owners::Name])
                        .values_panic([UNOWNED_SUBJECT.into(), "unowned (from revision 1)".into()])
                        .to_owned(),
                )
                .await?;
            db.execute_unprepared(
                "INSERT INTO resources_rebuilt (id, owner_id, name) \
                 SELECT r.id, o.id, r.name FROM resources r, owners o WHERE o.subject = 'urn:rust-api-axum:unowned'",
            )
            .await?;
        }
        manager.drop_table(Table::drop().table(Resources::Table).to_owned()).await?;
        manager.rename_table(Table::rename().table(ResourcesRebuilt::Table, Resources::Table).to_owned()).await?;
        restart_id_sequence(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                portable(&mut Table::create(), backend)
                    .table(ResourcesRebuilt::Table)
                    .col(ColumnDef::new(Resources::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Resources::Name).string_len(255).not_null())
                    .to_owned(),
            )
            .await?;
        // Names and ids survive the downgrade; ownership cannot, revision 1 has no owners.
        manager
            .get_connection()
            .execute_unprepared("INSERT INTO resources_rebuilt (id, name) SELECT id, name FROM resources")
            .await?;
        manager.drop_table(Table::drop().table(Resources::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Owners::Table).to_owned()).await?;
        manager.rename_table(Table::rename().table(ResourcesRebuilt::Table, Resources::Table).to_owned()).await?;
        restart_id_sequence(manager).await
    }
}

async fn has_rows(manager: &SchemaManager<'_>, table: Resources) -> Result<bool, DbErr> {
    let query = Query::select().expr(Expr::val(1)).from(table).limit(1).to_owned();
    let db = manager.get_connection();
    Ok(db.query_one(&query).await?.is_some())
}

/// PostgreSQL's sequence does not move when rows are copied with their ids: point it past the largest id so the
/// next insert does not collide. SQLite and MySQL continue after the largest id by themselves.
async fn restart_id_sequence(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let sql = "SELECT setval(pg_get_serial_sequence('resources', 'id'), COALESCE((SELECT MAX(id) FROM resources), 0) + 1, false)";
    manager.get_connection().query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    Ok(())
}

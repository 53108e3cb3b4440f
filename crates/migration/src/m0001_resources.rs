//! Revision 1, as in the Flask original: a `resources` table with names and no owners yet.

use sea_orm_migration::prelude::*;

use crate::{Resources, portable};

#[derive(DeriveMigrationName)]
pub struct Migration;

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
                    .table(Resources::Table)
                    .col(ColumnDef::new(Resources::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Resources::Name).string_len(255).not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Resources::Table).to_owned()).await
    }
}

//! Revision 3: every resource carries a `version`, a counter that each change of the row increments. The API's
//! strong `ETag` is made of the id and this version, and a conditional write (`If-Match`) is one statement that
//! compares and increments it (`... WHERE id = ? AND version = ?`), so two writers holding the same tag cannot both
//! win. A counter rather than a timestamp: two writes within one clock tick must still differ, and clocks move back.
//!
//! Existing rows start at version 1, as new rows do.

use sea_orm_migration::prelude::*;

use crate::Resources;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing where the engine allows it (MySQL commits each DDL statement regardless).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Resources::Table)
                    .add_column(ColumnDef::new(Resources::Version).big_integer().not_null().default(1i64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Resources::Table).drop_column(Resources::Version).to_owned()).await
    }
}

//! Revision 4: idempotency keys. A create sent with an `Idempotency-Key` header stores its key, a fingerprint of
//! the request and the answer in the same transaction as the row it creates, so a retry of that request is
//! answered again instead of creating a second row. Keyed per caller (`scope`, a digest of the token's subject and
//! client) and kept until `expires_at`, when a background task removes them.

use sea_orm_migration::prelude::*;

use crate::portable;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Identifiers of the table.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum IdempotencyKeys {
    Table,
    /// SHA-256 (hex) of the caller's subject and client: keys of different callers never meet.
    Scope,
    /// The header's value, 1–255 visible ASCII characters.
    IdemKey,
    /// SHA-256 (hex) of the request's method, path and body.
    Fingerprint,
    /// The answer's status; 0 while the transaction that claimed the key is still running.
    Status,
    /// The answer's `Location` header, if any.
    Location,
    /// The answer's `ETag` header, if any.
    Etag,
    /// The answer's body (JSON).
    Body,
    /// Unix seconds when the key was stored.
    CreatedAt,
    /// Unix seconds after which the key is forgotten.
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                portable(&mut Table::create(), backend)
                    .table(IdempotencyKeys::Table)
                    .col(ColumnDef::new(IdempotencyKeys::Scope).string_len(64).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::IdemKey).string_len(255).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Fingerprint).string_len(64).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Status).integer().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Location).string_len(2048).null())
                    .col(ColumnDef::new(IdempotencyKeys::Etag).string_len(255).null())
                    .col(ColumnDef::new(IdempotencyKeys::Body).text().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::ExpiresAt).big_integer().not_null())
                    .primary_key(Index::create().col(IdempotencyKeys::Scope).col(IdempotencyKeys::IdemKey))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_idempotency_keys_expires_at")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned()).await
    }
}

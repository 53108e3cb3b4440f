//! [`ResourceStore`] on SeaORM: one implementation for SQLite, PostgreSQL and MySQL/MariaDB, on the shared
//! [`DbHandle`]. Writes go through SeaORM's pool in the handle's write turn; the two hot reads are sea-query
//! statements run by its `Reader`. The unique (owner_id, name) constraint decides name clashes, so concurrent
//! creates cannot both succeed. A rename or delete compares the version in its own `WHERE` (and a rename
//! increments it in its `SET`), so the check and the write are one statement and two writers holding the same
//! version cannot both win.

use std::{borrow::Cow, sync::Arc};

use sea_orm::{
    ColumnTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, SqlErr, TransactionTrait,
    sea_query::{Expr, ExprTrait, Order, Query, SelectStatement, SimpleExpr},
};

use super::{
    entity::{owner, resource},
    handle::{DbHandle, TimedOut},
    idempotency::{GuardedWrite, IdempotencyKeys},
    owners,
    reads::{Columns, ReadError, ReadParam},
};
use crate::domain::{
    etag::{Expected, Version},
    idempotency::{Claim, Once, StoredAnswer},
    name::Name,
    owner::Owner,
    principal::Principal,
    resources::{Resource, ResourceError, ResourceId, ResourceStore},
};

/// Resources and owners in the configured database.
#[derive(Debug, Clone)]
pub struct SeaOrmResourceStore {
    db: DbHandle,
    reads: Arc<ResourceReads>,
    keys: IdempotencyKeys,
}

impl SeaOrmResourceStore {
    /// A store on the shared database handle `db`.
    pub fn new(db: DbHandle) -> Self {
        let keys = IdempotencyKeys::new(db.clone(), db.key_retention());
        Self { reads: Arc::new(ResourceReads::for_backend(db.backend())), keys, db }
    }
}

impl From<TimedOut> for ResourceError {
    fn from(timed_out: TimedOut) -> Self {
        Self::Storage(Box::new(timed_out))
    }
}

/// The reads, as SQL built once for the connected backend by sea-query from the entities, run by the handle's
/// `Reader`.
#[derive(Debug)]
struct ResourceReads {
    backend: DbBackend,
    /// One resource with its owner; binds the id.
    by_id: String,
    /// Resources with ids above a bound value, in id order, with their owners, up to a limit: a literal appended
    /// per call on SQLite, a bound value elsewhere (see `page`).
    page: String,
}

impl ResourceReads {
    fn for_backend(backend: DbBackend) -> Self {
        let id = || Expr::col((resource::Entity, resource::Column::Id));
        let by_id = resource_rows().and_where(id().eq(0i64)).to_owned();
        let mut page = resource_rows()
            .and_where(id().gt(0i64))
            .order_by((resource::Entity, resource::Column::Id), Order::Asc)
            .to_owned();
        if backend != DbBackend::Sqlite {
            page.limit(1);
        }
        Self { backend, by_id: backend.build(&by_id).sql, page: backend.build(&page).sql }
    }

    /// The page after `after` (`i64::MIN` for the first) as SQL and its bound values. On SQLite the limit is a
    /// literal: SQLite (built with STAT4) re-prepares a statement with a bound `LIMIT` on every run, while a
    /// literal makes each distinct limit one cached statement (`limit` is a number, so nothing can be injected).
    /// PostgreSQL and MariaDB bind it, so one prepared statement serves every limit.
    fn page(&self, after: i64, limit: u64) -> (Cow<'_, str>, Vec<ReadParam<'static>>) {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self.backend {
            DbBackend::Sqlite => (format!("{} LIMIT {limit}", self.page).into(), vec![ReadParam::Int(after)]),
            _ => (self.page.as_str().into(), vec![ReadParam::Int(after), ReadParam::Int(limit)]),
        }
    }
}

/// `SELECT` of a resource and its owner, in the column order [`decode`] reads.
fn resource_rows() -> SelectStatement {
    Query::select()
        .columns([(resource::Entity, resource::Column::Id), (resource::Entity, resource::Column::Name)])
        .columns([
            (owner::Entity, owner::Column::Id),
            (owner::Entity, owner::Column::Subject),
            (owner::Entity, owner::Column::ClientId),
            (owner::Entity, owner::Column::Name),
        ])
        .column((resource::Entity, resource::Column::Version))
        .from(resource::Entity)
        .inner_join(
            owner::Entity,
            Expr::col((owner::Entity, owner::Column::Id)).equals((resource::Entity, resource::Column::OwnerId)),
        )
        .to_owned()
}

/// A row of [`resource_rows`], by position.
fn decode(row: &dyn Columns) -> Result<Resource, ReadError> {
    Ok(Resource {
        id: ResourceId::from_stored(row.int(0)?),
        name: row.text(1)?,
        owner: Owner { id: row.int(2)?, subject: row.text(3)?, client_id: row.optional_text(4)?, name: row.text(5)? },
        version: Version::from_stored(row.int(6)?),
    })
}

fn storage(error: DbErr) -> ResourceError {
    ResourceError::Storage(Box::new(error))
}

fn read_failed(error: ReadError) -> ResourceError {
    ResourceError::Storage(Box::new(error))
}

fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// The `WHERE` of a conditional write to `id`: the row, at one of the `expected` versions.
fn at_expected_version(id: ResourceId, expected: &Expected) -> SimpleExpr {
    let row = resource::Column::Id.eq(id.get());
    match expected {
        Expected::Any => row,
        Expected::OneOf(versions) => row.and(resource::Column::Version.is_in(versions.iter().map(|v| v.get()))),
    }
}

impl SeaOrmResourceStore {
    async fn find_named(&self, owner_id: i64, name: &Name) -> Result<Option<ResourceId>, ResourceError> {
        // `.all()` on a unique key instead of `.one()`: see `get`.
        let existing = resource::Entity::find()
            .filter(resource::Column::OwnerId.eq(owner_id))
            .filter(resource::Column::Name.eq(name.as_str()))
            .all(self.db.pool())
            .await
            .map_err(storage)?;
        Ok(existing.first().map(|row| ResourceId::from_stored(row.id)))
    }

    /// Why a conditional write to `id` touched no row: it is gone, or it is at a version the write did not expect.
    async fn not_written(&self, id: ResourceId) -> ResourceError {
        match self.get(id).await {
            Ok(Some(current)) => ResourceError::Changed { id, current: current.etag() },
            Ok(None) => ResourceError::NotFound(id),
            Err(error) => error,
        }
    }

    async fn name_taken(&self, owner_id: i64, name: &Name, error: DbErr) -> ResourceError {
        match self.find_named(owner_id, name).await {
            Ok(Some(existing)) => ResourceError::NameTaken { name: name.to_string(), existing },
            // The clashing row was renamed or deleted between the failed write and this read: there is no clash to
            // name any more, so the write fails as the storage error it was (503); a retry may well succeed.
            Ok(None) => storage(error),
            Err(other) => other,
        }
    }
}

/// A create's writes inside `tx`: the owner first (so a SQLite transaction starts as a writer), then the row.
async fn insert(tx: &DatabaseTransaction, principal: &Principal, name: &Name) -> Result<Resource, DbErr> {
    let owner = owners::upsert(tx, principal).await?;
    let inserted = resource::Entity::insert(resource::ActiveModel {
        owner_id: sea_orm::Set(owner.id),
        name: sea_orm::Set(name.to_string()),
        ..Default::default()
    })
    .exec(tx)
    .await?;
    Ok(Resource {
        id: ResourceId::from_stored(inserted.last_insert_id),
        name: name.to_string(),
        owner: owner.into(),
        version: Version::FIRST,
    })
}

/// [`insert`] of owned values, for a write that may borrow nothing but its transaction.
async fn insert_owned(tx: &DatabaseTransaction, principal: Principal, name: Name) -> Result<Resource, DbErr> {
    insert(tx, &principal, &name).await
}

impl SeaOrmResourceStore {
    /// The error of a create that failed with `error` and was rolled back: a clash names the resource that has
    /// the name.
    async fn create_failed(&self, principal: &Principal, name: &Name, error: DbErr) -> ResourceError {
        if !is_unique_violation(&error) {
            return storage(error);
        }
        let owner = owner::Entity::find()
            .filter(owner::Column::Subject.eq(principal.subject.as_str()))
            .all(self.db.pool())
            .await;
        match owner.map(|rows| rows.into_iter().next()) {
            Ok(Some(owner)) => self.name_taken(owner.id, name, error).await,
            Ok(None) => storage(error),
            Err(other) => storage(other),
        }
    }
}

impl ResourceStore for SeaOrmResourceStore {
    async fn list(&self, after: Option<ResourceId>, limit: u64) -> Result<(Vec<Resource>, bool), ResourceError> {
        self.db
            .operation("list", "SELECT", async {
                // Ids are positive, but rows put there by hand may not be; the first page starts below any of them.
                let after = after.map_or(i64::MIN, ResourceId::get);
                // One row more than asked tells whether another page follows.
                let (sql, params) = self.reads.page(after, limit + 1);
                let mut resources = self.db.reader().rows(&sql, &params, decode).await.map_err(read_failed)?;
                let more = resources.len() as u64 > limit;
                resources.truncate(limit as usize);
                Ok((resources, more))
            })
            .await
    }

    async fn get(&self, id: ResourceId) -> Result<Option<Resource>, ResourceError> {
        self.db
            .operation("get", "SELECT", async {
                let params = [ReadParam::Int(id.get())];
                let rows = self.db.reader().rows(&self.reads.by_id, &params, decode).await.map_err(read_failed)?;
                Ok(rows.into_iter().next())
            })
            .await
    }

    async fn create(&self, principal: &Principal, name: &Name) -> Result<Resource, ResourceError> {
        self.db
            .operation("create", "INSERT", async {
                let _turn = self.db.write_turn().await;
                let tx = self.db.pool().begin().await.map_err(storage)?;
                let created = match insert(&tx, principal, name).await {
                    Ok(created) => created,
                    Err(error) => {
                        // Rolled back now, not when the transaction is dropped, so the next writer finds the lock free.
                        // A failed rollback still leaves the answer a clash; dropping the transaction tries again.
                        if let Err(rollback) = tx.rollback().await {
                            tracing::warn!("cannot roll back a failed create: {rollback}");
                        }
                        return Err(self.create_failed(principal, name, error).await);
                    }
                };
                tx.commit().await.map_err(storage)?;
                Ok(created)
            })
            .await
    }

    async fn create_once(
        &self,
        principal: &Principal,
        name: &Name,
        claim: &Claim,
        answer: impl FnOnce(&Resource) -> StoredAnswer + Send,
    ) -> Result<Once<Resource>, ResourceError> {
        self.db
            .operation("create", "INSERT", async {
                // Owned, so the write borrows nothing but its transaction.
                let (who, what) = (principal.clone(), name.clone());
                let created = self
                    .keys
                    .write_once(
                        claim,
                        move |tx| -> GuardedWrite<'_, Resource> { Box::pin(insert_owned(tx, who, what)) },
                        answer,
                    )
                    .await;
                match created {
                    Ok(once) => Ok(once),
                    Err(error) => Err(self.create_failed(principal, name, error).await),
                }
            })
            .await
    }

    async fn rename(&self, id: ResourceId, name: &Name, expected: &Expected) -> Result<Resource, ResourceError> {
        self.db
            .operation("rename", "UPDATE", async {
                let turn = self.db.write_turn().await;
                // The update and the read of what it wrote share a transaction, so the answer (and its ETag) is this
                // write's even when another one follows at once: the updated row stays locked until the commit.
                let tx = self.db.pool().begin().await.map_err(storage)?;
                let updated = resource::Entity::update_many()
                    .col_expr(resource::Column::Name, Expr::value(name.as_str()))
                    .col_expr(resource::Column::Version, Expr::col(resource::Column::Version).add(1i64))
                    .filter(at_expected_version(id, expected))
                    .exec(&tx)
                    .await;
                let written = match updated {
                    // The version always changes, so even MySQL (which counts changed rows, not matched ones) says 1
                    // for a rename to the same name.
                    Ok(result) if result.rows_affected > 0 => {
                        let rows = resource::Entity::find_by_id(id.get())
                            .find_also_related(owner::Entity)
                            .all(&tx)
                            .await
                            .map_err(storage)?;
                        tx.commit().await.map_err(storage)?;
                        drop(turn);
                        return match rows.into_iter().next() {
                            Some((row, Some(owner))) => Ok(Resource {
                                id,
                                name: row.name,
                                owner: owner.into(),
                                version: Version::from_stored(row.version),
                            }),
                            _ => Err(ResourceError::NotFound(id)),
                        };
                    }
                    Ok(_) => None,
                    Err(error) => Some(error),
                };
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!("cannot roll back a rename that wrote nothing: {rollback}");
                }
                drop(turn);
                match written {
                    Some(error) if is_unique_violation(&error) => {
                        let owner_id = self.get(id).await?.ok_or(ResourceError::NotFound(id))?.owner.id;
                        Err(self.name_taken(owner_id, name, error).await)
                    }
                    Some(error) => Err(storage(error)),
                    None => Err(self.not_written(id).await),
                }
            })
            .await
    }

    async fn delete(&self, id: ResourceId, expected: &Expected) -> Result<(), ResourceError> {
        self.db
            .operation("delete", "DELETE", async {
                let turn = self.db.write_turn().await;
                let deleted = resource::Entity::delete_many()
                    .filter(at_expected_version(id, expected))
                    .exec(self.db.pool())
                    .await
                    .map_err(storage)?;
                drop(turn);
                if deleted.rows_affected == 0 {
                    return Err(self.not_written(id).await);
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_one_join_with_the_id_bound_and_the_limit_literal_only_on_sqlite() {
        let sqlite = ResourceReads::for_backend(DbBackend::Sqlite);
        assert_eq!(
            sqlite.by_id,
            r#"SELECT "resources"."id", "resources"."name", "owners"."id", "owners"."subject", "owners"."client_id", "owners"."name", "resources"."version" FROM "resources" INNER JOIN "owners" ON "owners"."id" = "resources"."owner_id" WHERE "resources"."id" = ?"#
        );
        let (sql, params) = sqlite.page(5, 101);
        assert!(sql.ends_with(r#"ORDER BY "resources"."id" ASC LIMIT 101"#), "{sql}");
        assert!(matches!(params[..], [ReadParam::Int(5)]), "{params:?}");
        let postgres = ResourceReads::for_backend(DbBackend::Postgres);
        let (sql, params) = postgres.page(5, 101);
        assert!(sql.ends_with(r#"WHERE "resources"."id" > $1 ORDER BY "resources"."id" ASC LIMIT $2"#), "{sql}");
        assert!(matches!(params[..], [ReadParam::Int(5), ReadParam::Int(101)]), "{params:?}");
        let mysql = ResourceReads::for_backend(DbBackend::MySql);
        assert!(
            mysql.by_id.contains("`owners`.`subject`") && mysql.by_id.ends_with("`resources`.`id` = ?"),
            "{}",
            mysql.by_id
        );
    }
}

//! [`ResourceStore`] on SeaORM: one implementation for SQLite, PostgreSQL and MySQL/MariaDB. The unique
//! (owner_id, name) constraint decides name clashes, so concurrent creates cannot both succeed.

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
    TransactionTrait,
    sea_query::{Expr, OnConflict},
};

use super::entity::{owner, resource};
use crate::domain::{
    name::Name,
    resources::{Caller, Owner, Resource, ResourceError, ResourceId, ResourceStore},
};

/// Resources and owners in the configured database.
#[derive(Debug, Clone)]
pub struct SeaOrmResourceStore {
    db: DatabaseConnection,
}

impl SeaOrmResourceStore {
    /// A store over the pool `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn storage(error: DbErr) -> ResourceError {
    ResourceError::Storage(Box::new(error))
}

fn to_domain(row: resource::Model, owner: Option<owner::Model>) -> Result<Resource, ResourceError> {
    // The foreign key guarantees an owner; a missing one means the database was changed behind our back.
    let owner = owner.ok_or_else(|| storage(DbErr::RecordNotFound(format!("owner of resource {}", row.id))))?;
    Ok(Resource {
        id: ResourceId::from_stored(row.id),
        name: row.name,
        owner: Owner { id: owner.id, subject: owner.subject, client_id: owner.client_id, name: owner.name },
    })
}

fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

impl SeaOrmResourceStore {
    async fn find_named(&self, owner_id: i64, name: &Name) -> Result<Option<ResourceId>, ResourceError> {
        // `.all()` on a unique key instead of `.one()`: see `get`.
        let existing = resource::Entity::find()
            .filter(resource::Column::OwnerId.eq(owner_id))
            .filter(resource::Column::Name.eq(name.as_str()))
            .all(&self.db)
            .await
            .map_err(storage)?;
        Ok(existing.first().map(|row| ResourceId::from_stored(row.id)))
    }

    async fn name_taken(&self, owner_id: i64, name: &Name, error: DbErr) -> ResourceError {
        match self.find_named(owner_id, name).await {
            Ok(Some(existing)) => ResourceError::NameTaken { name: name.to_string(), existing },
            // The clashing row vanished between the failed write and this read: report the clash without an id.
            Ok(None) => storage(error),
            Err(other) => other,
        }
    }
}

impl ResourceStore for SeaOrmResourceStore {
    async fn list(&self, after: Option<ResourceId>, limit: u64) -> Result<(Vec<Resource>, bool), ResourceError> {
        let mut query = resource::Entity::find().find_also_related(owner::Entity);
        if let Some(after) = after {
            query = query.filter(resource::Column::Id.gt(after.get()));
        }
        let rows = query.order_by_asc(resource::Column::Id).limit(limit + 1).all(&self.db).await.map_err(storage)?;
        let more = rows.len() as u64 > limit;
        let resources = rows
            .into_iter()
            .take(limit as usize)
            .map(|(row, owner)| to_domain(row, owner))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((resources, more))
    }

    async fn get(&self, id: ResourceId) -> Result<Option<Resource>, ResourceError> {
        // `.one()` would bind `LIMIT ?`, and the bundled SQLite (built with STAT4) re-prepares a statement whose
        // LIMIT is a bound parameter on every execution: 31% of a read under callgrind. A primary-key lookup
        // returns one row anyway.
        let rows = resource::Entity::find_by_id(id.get())
            .find_also_related(owner::Entity)
            .all(&self.db)
            .await
            .map_err(storage)?;
        rows.into_iter().next().map(|(row, owner)| to_domain(row, owner)).transpose()
    }

    async fn create(&self, caller: &Caller, name: &Name) -> Result<Resource, ResourceError> {
        let tx = self.db.begin().await.map_err(storage)?;
        // The upsert comes first so a SQLite transaction starts as a writer and never has to upgrade its lock.
        let owner_row = owner::ActiveModel {
            subject: sea_orm::Set(caller.subject.clone()),
            client_id: sea_orm::Set(caller.client_id.clone()),
            name: sea_orm::Set(caller.name.clone()),
            ..Default::default()
        };
        owner::Entity::insert(owner_row)
            .on_conflict(
                OnConflict::column(owner::Column::Subject)
                    .update_columns([owner::Column::ClientId, owner::Column::Name])
                    .to_owned(),
            )
            .exec_without_returning(&tx)
            .await
            .map_err(storage)?;
        let owner = owner::Entity::find()
            .filter(owner::Column::Subject.eq(caller.subject.as_str()))
            .all(&tx)
            .await
            .map_err(storage)?
            .into_iter()
            .next()
            .ok_or_else(|| storage(DbErr::RecordNotFound("the owner just written".to_owned())))?;
        let inserted = resource::Entity::insert(resource::ActiveModel {
            owner_id: sea_orm::Set(owner.id),
            name: sea_orm::Set(name.to_string()),
            ..Default::default()
        })
        .exec(&tx)
        .await;
        let id = match inserted {
            Ok(result) => result.last_insert_id,
            Err(error) if is_unique_violation(&error) => {
                drop(tx);
                return Err(self.name_taken(owner.id, name, error).await);
            }
            Err(error) => return Err(storage(error)),
        };
        tx.commit().await.map_err(storage)?;
        Ok(Resource {
            id: ResourceId::from_stored(id),
            name: name.to_string(),
            owner: Owner { id: owner.id, subject: owner.subject, client_id: owner.client_id, name: owner.name },
        })
    }

    async fn rename(&self, id: ResourceId, name: &Name) -> Result<Resource, ResourceError> {
        let updated = resource::Entity::update_many()
            .col_expr(resource::Column::Name, Expr::value(name.as_str()))
            .filter(resource::Column::Id.eq(id.get()))
            .exec(&self.db)
            .await;
        if let Err(error) = updated {
            if !is_unique_violation(&error) {
                return Err(storage(error));
            }
            let owner_id = self.get(id).await?.ok_or(ResourceError::NotFound(id))?.owner.id;
            return Err(self.name_taken(owner_id, name, error).await);
        }
        // Re-read instead of trusting the affected-row count, which MySQL reports as 0 for an unchanged name.
        self.get(id).await?.ok_or(ResourceError::NotFound(id))
    }

    async fn delete(&self, id: ResourceId) -> Result<(), ResourceError> {
        let deleted = resource::Entity::delete_by_id(id.get()).exec(&self.db).await.map_err(storage)?;
        if deleted.rows_affected == 0 {
            return Err(ResourceError::NotFound(id));
        }
        Ok(())
    }
}

//! The `owners` rows every owned entity's store shares: a write records (or refreshes) its caller as an owner in
//! the write's own transaction, and reads turn the row into the domain's [`Owner`].

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, sea_query::OnConflict,
};

use super::entity::owner;
use crate::domain::{owner::Owner, principal::Principal};

/// Records `principal` as an owner, or refreshes the client and name it last used, inside `tx`; the row as it is
/// now. Call it first in a write's transaction, so a SQLite transaction starts as a writer and never has to
/// upgrade its lock.
pub async fn upsert(tx: &DatabaseTransaction, principal: &Principal) -> Result<owner::Model, DbErr> {
    let row = owner::ActiveModel {
        subject: sea_orm::Set(principal.subject.clone()),
        client_id: sea_orm::Set(principal.client_id.clone()),
        name: sea_orm::Set(principal.username.as_str().to_owned()),
        ..Default::default()
    };
    let upsert = owner::Entity::insert(row).on_conflict(
        OnConflict::column(owner::Column::Subject)
            .update_columns([owner::Column::ClientId, owner::Column::Name])
            .to_owned(),
    );
    if tx.support_returning() {
        // SQLite and PostgreSQL return the row the upsert left: one round trip less per write.
        return upsert.exec_with_returning(tx).await;
    }
    // MySQL/MariaDB: no RETURNING on an upsert, and `LAST_INSERT_ID` does not name a row it updated. `.all()` on
    // the unique subject rather than `.one()`, whose bound `LIMIT` the bundled SQLite re-prepares on every run.
    upsert.exec_without_returning(tx).await?;
    owner::Entity::find()
        .filter(owner::Column::Subject.eq(principal.subject.as_str()))
        .all(tx)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DbErr::RecordNotFound("the owner just written".to_owned()))
}

impl From<owner::Model> for Owner {
    fn from(row: owner::Model) -> Self {
        Self { id: row.id, subject: row.subject, client_id: row.client_id, name: row.name }
    }
}

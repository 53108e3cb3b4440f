//! The `resources` table: named things, unique per owner.

use sea_orm::entity::prelude::*;

/// A row of `resources`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resources")]
pub struct Model {
    /// Surrogate key, also the API's id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The owning row of `owners`.
    pub owner_id: i64,
    /// The name; unique together with `owner_id`.
    pub name: String,
    /// How many times the row has changed, counting its insert (the column's default, 1); the API's `ETag` names it.
    pub version: i64,
}

/// Relations of `resources`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Each resource belongs to one owner.
    #[sea_orm(belongs_to = "super::owner::Entity", from = "Column::OwnerId", to = "super::owner::Column::Id")]
    Owner,
}

impl Related<super::owner::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Owner.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

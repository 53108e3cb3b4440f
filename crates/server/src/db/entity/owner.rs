//! The `owners` table: one row per token subject that created something.

use sea_orm::entity::prelude::*;

/// A row of `owners`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "owners")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The token subject; unique.
    #[sea_orm(unique)]
    pub subject: String,
    /// The OAuth client last seen for this subject.
    pub client_id: Option<String>,
    /// The display name last seen for this subject.
    pub name: String,
}

/// Relations of `owners`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// An owner has many resources.
    #[sea_orm(has_many = "super::resource::Entity")]
    Resource,
}

impl Related<super::resource::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Resource.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

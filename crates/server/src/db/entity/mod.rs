//! SeaORM entities: the tables as the migrations leave them. Only `db` uses them; the domain has its own types.

pub mod owner;
pub mod resource;

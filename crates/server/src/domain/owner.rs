//! `Owner`: who owns a stored thing, as every owned entity (resources, and each entity `cargo xtask new-entity`
//! adds) records it: one row per token subject, refreshed with the caller's client and name on each write.

/// The owner of resources and of every other owned entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Storage id of the owner.
    pub id: i64,
    /// The subject that owns; never shown to other callers.
    pub subject: String,
    /// The OAuth client the owner last used.
    pub client_id: Option<String>,
    /// The owner's display name as last seen.
    pub name: String,
}

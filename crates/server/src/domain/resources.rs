//! Owned resources: what a resource is, who owns it, and the rule that only its owner may change it. Storage is
//! behind [`ResourceStore`], so these rules hold for every API version and can be tested with a fake store.
//!
//! Every change of a resource increments its [`Version`]; a write may be made conditional on the version the
//! caller last saw ([`Expected`], from `If-Match`), and the store checks and writes in one statement, so of two
//! writers holding the same version exactly one wins and the other learns that the resource [changed](ResourceError::Changed).

use std::future::Future;

use super::{
    etag::{ETag, Expected, Version},
    idempotency::{Claim, Once, StoredAnswer},
    name::Name,
    owner::Owner,
    principal::Principal,
};

/// A resource's id: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId(i64);

impl ResourceId {
    /// Parses a path segment; anything but a positive integer is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        raw.parse::<i64>().ok().filter(|id| *id > 0).map(Self)
    }

    /// Wraps an id read from storage.
    pub fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// The numeric id.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A resource with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource's id.
    pub id: ResourceId,
    /// Its name, unique per owner.
    pub name: String,
    /// Who owns it.
    pub owner: Owner,
    /// How many times it has changed, counting its creation.
    pub version: Version,
}

impl Resource {
    /// Its strong entity tag, which changes with every change of the resource.
    pub fn etag(&self) -> ETag {
        ETag::new(self.id.get(), self.version)
    }
}

/// One page of resources in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The resources, ascending by id.
    pub resources: Vec<Resource>,
    /// Where the next page starts (exclusive), when there is one.
    pub next_after: Option<ResourceId>,
}

/// Why a resource operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// No resource has this id.
    #[error("No resource with id {0}")]
    NotFound(ResourceId),
    /// The resource belongs to someone else.
    #[error("Resource {0} belongs to another owner")]
    NotOwner(ResourceId),
    /// The caller already owns a resource with this name.
    #[error("You already own a resource named '{name}' (id {existing})")]
    NameTaken {
        /// The requested name.
        name: String,
        /// The id of the resource that has it.
        existing: ResourceId,
    },
    /// The resource is not at a version the write expected: someone changed it since the caller read it.
    #[error("Resource {id} changed since you read it; its current ETag is {current}")]
    Changed {
        /// The resource.
        id: ResourceId,
        /// Its current tag.
        current: ETag,
    },
    /// Storage failed; the cause is logged, not shown.
    #[error("storage failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Persistence of resources and owners. Implementations must make `create` and `rename` fail with
/// [`ResourceError::NameTaken`] through a unique constraint, so concurrent requests cannot both win. A new resource
/// is at [`Version::FIRST`]; `rename` increments the version. `rename` and `delete` compare the version with
/// `expected` and write in one atomic step: when the row is there but at another version, nothing is written and
/// the answer is [`ResourceError::Changed`] with its current tag; when it is not there, `NotFound`.
pub trait ResourceStore: Send + Sync {
    /// Up to `limit` resources with ids after `after`, ascending, plus whether more follow.
    fn list(
        &self,
        after: Option<ResourceId>,
        limit: u64,
    ) -> impl Future<Output = Result<(Vec<Resource>, bool), ResourceError>> + Send;
    /// The resource with `id`, if any.
    fn get(&self, id: ResourceId) -> impl Future<Output = Result<Option<Resource>, ResourceError>> + Send;
    /// Creates a resource for `principal`, recording or refreshing them as an owner in the same transaction.
    fn create(
        &self,
        principal: &Principal,
        name: &Name,
    ) -> impl Future<Output = Result<Resource, ResourceError>> + Send;
    /// [`ResourceStore::create`] guarded by `claim`'s idempotency key: the key and `answer` of the new resource are
    /// stored in the create's transaction, or, when the key is taken, nothing is written and what it says returned.
    fn create_once(
        &self,
        principal: &Principal,
        name: &Name,
        claim: &Claim,
        answer: impl FnOnce(&Resource) -> StoredAnswer + Send,
    ) -> impl Future<Output = Result<Once<Resource>, ResourceError>> + Send;
    /// Renames resource `id` if its version is `expected`, and increments the version; `NotFound` when it vanished
    /// meanwhile.
    fn rename(
        &self,
        id: ResourceId,
        name: &Name,
        expected: &Expected,
    ) -> impl Future<Output = Result<Resource, ResourceError>> + Send;
    /// Deletes resource `id` if its version is `expected`; `NotFound` when it vanished meanwhile.
    fn delete(&self, id: ResourceId, expected: &Expected) -> impl Future<Output = Result<(), ResourceError>> + Send;
}

/// A page of resources; `limit` is already validated by the caller.
pub async fn list(store: &impl ResourceStore, after: Option<ResourceId>, limit: u64) -> Result<Page, ResourceError> {
    let (resources, more) = store.list(after, limit).await?;
    let next_after = if more { resources.last().map(|r| r.id) } else { None };
    Ok(Page { resources, next_after })
}

/// The resource `id`; anyone with read access may see any resource.
pub async fn get(store: &impl ResourceStore, id: ResourceId) -> Result<Resource, ResourceError> {
    store.get(id).await?.ok_or(ResourceError::NotFound(id))
}

/// Creates a resource owned by `principal`.
pub async fn create(store: &impl ResourceStore, principal: &Principal, name: &Name) -> Result<Resource, ResourceError> {
    store.create(principal, name).await
}

/// Creates a resource owned by `principal` once per idempotency key (see [`ResourceStore::create_once`]).
pub async fn create_once(
    store: &impl ResourceStore,
    principal: &Principal,
    name: &Name,
    claim: &Claim,
    answer: impl FnOnce(&Resource) -> StoredAnswer + Send,
) -> Result<Once<Resource>, ResourceError> {
    store.create_once(principal, name, claim, answer).await
}

/// Renames a resource if it is still at a version the caller `expected`; only its owner may.
pub async fn rename(
    store: &impl ResourceStore,
    principal: &Principal,
    id: ResourceId,
    name: &Name,
    expected: &Expected,
) -> Result<Resource, ResourceError> {
    ensure_owner(store, principal, id, expected).await?;
    store.rename(id, name, expected).await
}

/// Deletes a resource if it is still at a version the caller `expected`; only its owner may.
pub async fn delete(
    store: &impl ResourceStore,
    principal: &Principal,
    id: ResourceId,
    expected: &Expected,
) -> Result<(), ResourceError> {
    ensure_owner(store, principal, id, expected).await?;
    store.delete(id, expected).await
}

/// Ownership never changes, so checking it before the write is race-free; a concurrent delete shows up as
/// `NotFound` from the write itself. A version already stale here is refused at once (the store would refuse it
/// too); one that is current here is checked again by the store's write, which is what decides.
async fn ensure_owner(
    store: &impl ResourceStore,
    principal: &Principal,
    id: ResourceId,
    expected: &Expected,
) -> Result<(), ResourceError> {
    let resource = get(store, id).await?;
    if resource.owner.subject != principal.subject {
        return Err(ResourceError::NotOwner(id));
    }
    if !expected.admits(resource.version) {
        return Err(ResourceError::Changed { id, current: resource.etag() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::principal::DisplayName;

    /// An in-memory store keeping the trait's contract: a name clash per owner is `NameTaken`, a write to an id
    /// that is not there is `NotFound`.
    #[derive(Default)]
    struct FakeStore {
        rows: Mutex<Vec<Resource>>,
    }

    impl ResourceStore for FakeStore {
        async fn list(&self, after: Option<ResourceId>, limit: u64) -> Result<(Vec<Resource>, bool), ResourceError> {
            let rows = self.rows.lock().expect("lock");
            let mut page: Vec<Resource> = rows.iter().filter(|r| after.is_none_or(|a| r.id > a)).cloned().collect();
            let more = page.len() as u64 > limit;
            page.truncate(limit as usize);
            Ok((page, more))
        }

        async fn get(&self, id: ResourceId) -> Result<Option<Resource>, ResourceError> {
            Ok(self.rows.lock().expect("lock").iter().find(|r| r.id == id).cloned())
        }

        async fn create(&self, principal: &Principal, name: &Name) -> Result<Resource, ResourceError> {
            let mut rows = self.rows.lock().expect("lock");
            if let Some(existing) =
                rows.iter().find(|r| r.owner.subject == principal.subject && r.name == name.as_str())
            {
                return Err(ResourceError::NameTaken { name: name.to_string(), existing: existing.id });
            }
            let resource = Resource {
                id: ResourceId(rows.len() as i64 + 1),
                name: name.to_string(),
                owner: Owner {
                    id: 1,
                    subject: principal.subject.clone(),
                    client_id: None,
                    name: principal.username.as_str().to_owned(),
                },
                version: Version::FIRST,
            };
            rows.push(resource.clone());
            Ok(resource)
        }

        async fn create_once(
            &self,
            principal: &Principal,
            name: &Name,
            _claim: &Claim,
            _answer: impl FnOnce(&Resource) -> StoredAnswer + Send,
        ) -> Result<Once<Resource>, ResourceError> {
            // The keys' rules are the store's (db::idempotency, tested there); the domain only passes them on.
            self.create(principal, name).await.map(Once::Ran)
        }

        async fn rename(&self, id: ResourceId, name: &Name, expected: &Expected) -> Result<Resource, ResourceError> {
            let mut rows = self.rows.lock().expect("lock");
            let current = rows.iter().find(|r| r.id == id).ok_or(ResourceError::NotFound(id))?;
            if !expected.admits(current.version) {
                return Err(ResourceError::Changed { id, current: current.etag() });
            }
            let owner = current.owner.subject.clone();
            if let Some(existing) =
                rows.iter().find(|r| r.id != id && r.owner.subject == owner && r.name == name.as_str())
            {
                return Err(ResourceError::NameTaken { name: name.to_string(), existing: existing.id });
            }
            let row = rows.iter_mut().find(|r| r.id == id).ok_or(ResourceError::NotFound(id))?;
            row.name = name.to_string();
            row.version = Version::from_stored(row.version.get() + 1);
            Ok(row.clone())
        }

        async fn delete(&self, id: ResourceId, expected: &Expected) -> Result<(), ResourceError> {
            let mut rows = self.rows.lock().expect("lock");
            if let Some(current) = rows.iter().find(|r| r.id == id).filter(|r| !expected.admits(r.version)) {
                return Err(ResourceError::Changed { id, current: current.etag() });
            }
            let before = rows.len();
            rows.retain(|r| r.id != id);
            if rows.len() == before { Err(ResourceError::NotFound(id)) } else { Ok(()) }
        }
    }

    fn caller(subject: &str) -> Principal {
        let username = DisplayName::from_claim(subject).expect("visible");
        Principal { subject: subject.into(), client_id: None, username, scopes: Default::default() }
    }

    fn name(text: &str) -> Name {
        Name::parse(text).expect("valid")
    }

    #[tokio::test]
    async fn only_the_owner_may_rename_or_delete() {
        let store = FakeStore::default();
        let created = create(&store, &caller("alice"), &name("a")).await.expect("created");
        let refused = rename(&store, &caller("bob"), created.id, &name("b"), &Expected::Any).await;
        assert!(matches!(refused, Err(ResourceError::NotOwner(id)) if id == created.id));
        assert!(matches!(
            delete(&store, &caller("bob"), created.id, &Expected::Any).await,
            Err(ResourceError::NotOwner(_))
        ));
        assert_eq!(
            rename(&store, &caller("alice"), created.id, &name("b"), &Expected::Any).await.expect("renamed").name,
            "b"
        );
        delete(&store, &caller("alice"), created.id, &Expected::Any).await.expect("deleted");
        assert!(matches!(get(&store, created.id).await, Err(ResourceError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_resource_deleted_after_the_ownership_check_is_not_found_not_deleted_twice() {
        // The race `ensure_owner` leaves to the store: the owner checked, then the row vanished.
        let store = FakeStore::default();
        let created = create(&store, &caller("alice"), &name("a")).await.expect("created");
        store.delete(created.id, &Expected::Any).await.expect("deleted by a concurrent request");
        assert!(
            matches!(store.delete(created.id, &Expected::Any).await, Err(ResourceError::NotFound(id)) if id == created.id)
        );
        assert!(matches!(store.rename(created.id, &name("b"), &Expected::Any).await, Err(ResourceError::NotFound(_))));
    }

    #[tokio::test]
    async fn renaming_onto_a_name_the_owner_has_is_a_clash() {
        let store = FakeStore::default();
        let first = create(&store, &caller("alice"), &name("a")).await.expect("created");
        let second = create(&store, &caller("alice"), &name("b")).await.expect("created");
        let clash = rename(&store, &caller("alice"), second.id, &name("a"), &Expected::Any).await;
        assert!(matches!(clash, Err(ResourceError::NameTaken { existing, .. }) if existing == first.id));
        create(&store, &caller("bob"), &name("a")).await.expect("another owner may use the name");
    }

    #[tokio::test]
    async fn missing_resources_are_not_found_for_everyone() {
        let store = FakeStore::default();
        let id = ResourceId(42);
        assert!(matches!(
            rename(&store, &caller("a"), id, &name("x"), &Expected::Any).await,
            Err(ResourceError::NotFound(_))
        ));
        assert!(matches!(delete(&store, &caller("a"), id, &Expected::Any).await, Err(ResourceError::NotFound(_))));
    }

    #[tokio::test]
    async fn every_rename_moves_the_version_and_a_stale_one_changes_nothing() {
        let store = FakeStore::default();
        let alice = caller("alice");
        let created = create(&store, &alice, &name("a")).await.expect("created");
        assert_eq!(created.version, Version::FIRST);
        let unconditional = rename(&store, &alice, created.id, &name("b"), &Expected::Any).await.expect("renamed");
        assert_eq!(unconditional.version.get(), 2, "a rename without a condition moves the version too");
        assert_ne!(unconditional.etag(), created.etag());

        let stale = Expected::OneOf(vec![created.version]);
        let refused = rename(&store, &alice, created.id, &name("c"), &stale).await;
        assert!(
            matches!(refused, Err(ResourceError::Changed { id, current }) if id == created.id && current == unconditional.etag()),
            "{refused:?}"
        );
        assert!(matches!(delete(&store, &alice, created.id, &stale).await, Err(ResourceError::Changed { .. })));
        // The store keeps the contract on its own, for a change between the ownership check and the write.
        assert!(matches!(store.rename(created.id, &name("c"), &stale).await, Err(ResourceError::Changed { .. })));
        assert!(matches!(store.delete(created.id, &stale).await, Err(ResourceError::Changed { .. })));
        assert_eq!(get(&store, created.id).await.expect("still there").name, "b");

        let current = Expected::OneOf(vec![created.version, unconditional.version]);
        let renamed = rename(&store, &alice, created.id, &name("c"), &current).await.expect("current version");
        assert_eq!((renamed.name.as_str(), renamed.version.get()), ("c", 3));
        let refused = delete(&store, &caller("bob"), created.id, &Expected::OneOf(vec![])).await;
        assert!(matches!(refused, Err(ResourceError::NotOwner(_))), "ownership is decided before the version");
        delete(&store, &alice, created.id, &Expected::OneOf(vec![renamed.version])).await.expect("deleted");
        let gone = delete(&store, &alice, created.id, &Expected::OneOf(vec![renamed.version])).await;
        assert!(matches!(gone, Err(ResourceError::NotFound(_))), "a missing resource is not found, not changed");
    }

    #[tokio::test]
    async fn pages_point_at_their_successor_only_when_one_exists() {
        let store = FakeStore::default();
        for n in 0..3 {
            create(&store, &caller("a"), &name(&format!("r{n}"))).await.expect("created");
        }
        let first = list(&store, None, 2).await.expect("page");
        assert_eq!(first.resources.len(), 2);
        assert_eq!(first.next_after, Some(ResourceId(2)));
        let second = list(&store, first.next_after, 2).await.expect("page");
        assert_eq!(second.resources.len(), 1);
        assert_eq!(second.next_after, None);
    }

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(ResourceId::parse("7"), Some(ResourceId(7)));
        for raw in ["0", "-1", "abc", "1.5", "", "99999999999999999999"] {
            assert_eq!(ResourceId::parse(raw), None, "{raw}");
        }
    }
}

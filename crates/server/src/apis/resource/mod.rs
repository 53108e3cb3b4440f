//! The resource API: one module per version, each translating HTTP to the shared domain in `domain::resources`,
//! and how the domain's failures answer over HTTP (shared by every version).

pub mod v1;

use axum::http::StatusCode;
use platform::problem::{HttpError, ProblemDraft};

use crate::{domain::resources::ResourceError, error::ApiError};

impl HttpError for ResourceError {
    fn problem(&self) -> ProblemDraft {
        match self {
            Self::NotFound(_) => ProblemDraft::new(StatusCode::NOT_FOUND, self.to_string()),
            Self::NotOwner(_) => ProblemDraft::new(StatusCode::FORBIDDEN, self.to_string()),
            Self::NameTaken { existing, .. } => {
                ProblemDraft::new(StatusCode::CONFLICT, self.to_string()).with_member("existing_id", existing.get())
            }
            // The current tag in the body, not as an `ETag` header: this answer carries no representation.
            Self::Changed { current, .. } => ProblemDraft::new(StatusCode::PRECONDITION_FAILED, self.to_string())
                .with_member("current_etag", current.to_string()),
            Self::Storage(source) => {
                // Driver text stays in the log: it can name tables, hosts and users.
                tracing::error!(error = %source, "database operation failed");
                ProblemDraft::new(StatusCode::SERVICE_UNAVAILABLE, ApiError::DatabaseUnavailable.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::resources::ResourceId;

    use super::*;

    #[test]
    fn storage_failures_are_503_without_driver_text() {
        let problem = ResourceError::Storage("connection to db.internal:5432 refused for app".into()).problem();
        assert_eq!(problem.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.detail(), "The database is unavailable; try again later");
    }

    #[test]
    fn a_name_clash_is_a_409_naming_the_existing_resource() {
        let existing = ResourceId::parse("7").expect("id");
        let problem = ResourceError::NameTaken { name: "x".into(), existing }.problem();
        assert_eq!(problem.status(), StatusCode::CONFLICT);
        assert!(problem.detail().contains("id 7"), "{}", problem.detail());
    }

    #[test]
    fn a_stale_version_is_a_412_naming_the_current_tag() {
        use crate::domain::etag::{ETag, Version};
        let id = ResourceId::parse("3").expect("id");
        let current = ETag::new(3, Version::from_stored(5));
        let problem = ResourceError::Changed { id, current }.problem();
        assert_eq!(problem.status(), StatusCode::PRECONDITION_FAILED);
        assert!(problem.detail().contains("changed since you read it"), "{}", problem.detail());
    }

    #[test]
    fn not_found_and_not_owner_are_404_and_403() {
        let id = ResourceId::parse("3").expect("id");
        assert_eq!(ResourceError::NotFound(id).problem().status(), StatusCode::NOT_FOUND);
        assert_eq!(ResourceError::NotOwner(id).problem().status(), StatusCode::FORBIDDEN);
    }
}

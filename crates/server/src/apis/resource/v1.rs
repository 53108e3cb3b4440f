//! Resource API v1: owned, named resources. Reading needs the read scope, changing the write scope; only a
//! resource's owner may rename or delete it. Every resource has a strong `ETag`; reads honour `If-None-Match`
//! (304) and writes `If-Match` (412 when stale; 428 without it when `require_if_match` is set). Handlers only
//! translate HTTP <-> domain.

use api_types::{OwnerView, Problem, ResourceInput, ResourceList, ResourceView};
use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{ReadScope, Scoped, WriteScope},
    domain::{
        idempotency::{Claim, Fingerprint, Once, StoredAnswer},
        name::Name,
        resources::{self, Resource, ResourceId},
    },
    error::ApiError,
    error::responses::{BodyProblems, ReadAccessProblems, WriteAccessProblems},
    extract::{ApiJson, ApiQuery, etag_header, expected, not_modified},
    idempotency::{self, KeyHeader},
    state::AppState,
};

/// Default page size of the list.
pub const DEFAULT_LIMIT: u64 = 100;
/// Largest page size a caller may ask for.
pub const MAX_LIMIT: u64 = 1000;

/// Routes under `/api/resource/v1`, merged into the service by the registry.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_resources, create_resource)).routes(routes!(
        get_resource,
        rename_resource,
        delete_resource
    ))
}

impl From<Resource> for ResourceView {
    fn from(resource: Resource) -> Self {
        Self {
            id: resource.id.get(),
            etag: resource.etag().to_string(),
            name: resource.name,
            owner: OwnerView { id: resource.owner.id, client_id: resource.owner.client_id, name: resource.owner.name },
        }
    }
}

fn resource_id(raw: &str) -> Result<ResourceId, ApiError> {
    ResourceId::parse(raw).ok_or_else(|| ApiError::invalid_field("id", "must be a positive integer"))
}

fn valid_name(input: ResourceInput) -> Result<Name, ApiError> {
    Name::parse(&input.name).map_err(|error| ApiError::unprocessable_field("name", error.to_string()))
}

/// Query parameters of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000, example = 100)]
    limit: Option<u64>,
    /// Return resources with ids greater than this (the `next` link sets it).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// Lists resources of every owner in ascending id order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/resource/v1",
    operation_id = "resource_v1_list",
    tag = "resource",
    params(ListQuery),
    security(("oidc" = ["read"])),
    responses(
        (status = 200, description = "A page of resources; `next` and a `Link: rel=\"next\"` header point at the following page",
            body = ResourceList),
        (status = 400, description = "`limit` or `after` is out of range", body = Problem, content_type = "application/problem+json"),
        ReadAccessProblems
    )
)]
async fn list_resources(
    State(state): State<AppState>,
    _reader: Scoped<ReadScope>,
    uri: Uri,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let after = match query.after {
        None | Some(0) => None,
        Some(after) => Some(
            ResourceId::parse(&after.to_string())
                .ok_or_else(|| ApiError::invalid_field("after", "must be a resource id (a positive integer) or 0"))?,
        ),
    };
    let page = resources::list(&state.resources, after, limit).await?;
    let next = page.next_after.map(|after| format!("{}?limit={limit}&after={after}", uri.path()));
    let mut headers = HeaderMap::new();
    if let Some(link) = next.as_ref().and_then(|next| HeaderValue::try_from(format!("<{next}>; rel=\"next\"")).ok()) {
        headers.insert(header::LINK, link);
    }
    let body = ResourceList { resources: page.resources.into_iter().map(ResourceView::from).collect(), next };
    Ok((headers, Json(body)))
}

/// Reads one resource; any holder of the read scope may read any resource.
#[utoipa::path(
    get,
    path = "/api/resource/v1/{id}",
    operation_id = "resource_v1_get",
    tag = "resource",
    params(
        ("id" = i64, Path, description = "The resource's id", minimum = 1),
        ("If-None-Match" = Option<String>, Header, nullable = false, 
            description = "Entity tags (or `*`) of versions the caller has: when the current one is among them \
                (weak comparison), the answer is 304 without a body; a value that is not `*` or a list of entity tags \
                is ignored"),
    ),
    security(("oidc" = ["read"])),
    responses(
        (status = 200, description = "The resource", body = ResourceView,
            headers(("ETag" = String, description = "The resource's strong entity tag, `\"<id>.<version>\"`"))),
        (status = 304, description = "Not modified: `If-None-Match` names the current version",
            headers(("ETag" = String, description = "The resource's strong entity tag, `\"<id>.<version>\"`"))),
        (status = 400, description = "The id is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No resource has this id", body = Problem, content_type = "application/problem+json"),
        ReadAccessProblems
    )
)]
async fn get_resource(
    State(state): State<AppState>,
    _reader: Scoped<ReadScope>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resource = resources::get(&state.resources, resource_id(&id)?).await?;
    let etag = resource.etag();
    if not_modified(&headers, etag) {
        return Ok((StatusCode::NOT_MODIFIED, etag_header(etag)).into_response());
    }
    Ok((etag_header(etag), Json(ResourceView::from(resource))).into_response())
}

/// Creates a resource owned by the caller (the token's subject). With an `Idempotency-Key`, a retry of the same
/// request within the key's retention is answered again (marked `Idempotent-Replayed: true`) instead of creating
/// a second resource.
#[utoipa::path(
    post,
    path = "/api/resource/v1",
    operation_id = "resource_v1_create",
    tag = "resource",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
            description = "1 to 255 visible ASCII characters, unique per request (a UUID, say). A retry with the same key and \
                the same request gets the first answer again, for `idempotency_retention_secs` (a day unless configured); \
                the same key with a different request is a 422, and while the first is still running a 409 with `Retry-After`.")
    ),
    request_body(content = ResourceInput, content_type = "application/json"),
    security(("oidc" = ["write"])),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the answer its key earned before); \
            `Location` names the new resource", body = ResourceView,
            headers(
                ("Location" = String, description = "Path of the new resource"),
                ("ETag" = String, description = "The new resource's strong entity tag, `\"<id>.<version>\"`"),
                ("Idempotent-Replayed" = String, description = "`true` when this answer is given again from the request's \
                    Idempotency-Key; absent when it was made now")
            )),
        (status = 400, description = "The body is not valid JSON or is nested deeper than 127 levels, or the Idempotency-Key \
            is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller already owns a resource with this name (`existing_id` names it), or a request \
            with this Idempotency-Key is still running (retry after `Retry-After` seconds with the same key)",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "When the key is in flight: seconds to wait before retrying"))),
        (status = 413, description = "The body is larger than `max_body_bytes` (1 MiB unless configured)", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body does not fit (`errors` lists each field), or the Idempotency-Key was already \
            used for a different request", body = Problem, content_type = "application/problem+json"),
        WriteAccessProblems
    )
)]
async fn create_resource(
    State(state): State<AppState>,
    Scoped(writer, _): Scoped<WriteScope>,
    uri: Uri,
    KeyHeader(key): KeyHeader,
    ApiJson(input): ApiJson<ResourceInput>,
) -> Result<Response, ApiError> {
    let Some(key) = key else {
        let created = resources::create(&state.resources, &writer, &valid_name(input)?).await?;
        return Ok(idempotency::answered(&created_answer(uri.path(), &created), false));
    };
    // The body as parsed and written again: the same request whatever its spacing or member order.
    let body = serde_json::to_vec(&input).map_err(|error| ApiError::Internal(Box::new(error)))?;
    let claim = Claim::new(&writer, key, Fingerprint::of("POST", uri.path(), &body));
    let path = uri.path().to_owned();
    let shared = state.clone();
    let response = shared
        .idempotency
        .guard(&shared.keys, claim, |claim| async move {
            let name = valid_name(input)?;
            let answer = |created: &Resource| created_answer(&path, created);
            let once = resources::create_once(&state.resources, &writer, &name, &claim, answer).await?;
            Ok(match once {
                Once::Ran(created) => Once::Ran(idempotency::answered(&created_answer(&path, &created), false)),
                Once::Settled(settled) => Once::Settled(settled),
            })
        })
        .await;
    Ok(response)
}

/// A create's answer: 201, `Location` of the new resource, its JSON; the same bytes whether given now or again
/// from its idempotency key.
fn created_answer(path: &str, created: &Resource) -> StoredAnswer {
    let view = ResourceView::from(created.clone());
    StoredAnswer {
        status: StatusCode::CREATED.as_u16(),
        location: Some(format!("{}/{}", path.trim_end_matches('/'), created.id)),
        etag: Some(created.etag().to_string()),
        // A view of plain strings and numbers always serialises.
        body: serde_json::to_string(&view).unwrap_or_default(),
    }
}

/// Renames a resource; only its owner may.
#[utoipa::path(
    put,
    path = "/api/resource/v1/{id}",
    operation_id = "resource_v1_rename",
    tag = "resource",
    params(
        ("id" = i64, Path, description = "The resource's id", minimum = 1),
        ("If-Match" = Option<String>, Header, nullable = false, description = IF_MATCH),
    ),
    request_body(content = ResourceInput, content_type = "application/json"),
    security(("oidc" = ["write"])),
    responses(
        (status = 200, description = "Renamed (every rename makes a new version)", body = ResourceView,
            headers(("ETag" = String, description = "The new version's strong entity tag, `\"<id>.<version>\"`"))),
        (status = 404, description = "No resource has this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The owner already has a resource with this name; `existing_id` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 412, description = PRECONDITION_FAILED, body = Problem, content_type = "application/problem+json"),
        (status = 428, description = PRECONDITION_REQUIRED, body = Problem, content_type = "application/problem+json"),
        WriteAccessProblems,
        BodyProblems
    )
)]
async fn rename_resource(
    State(state): State<AppState>,
    Scoped(writer, _): Scoped<WriteScope>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ResourceInput>,
) -> Result<Response, ApiError> {
    let id = resource_id(&id)?;
    let expected = expected(&headers, id.get(), state.api.require_if_match)?;
    let name = valid_name(input)?;
    let renamed = resources::rename(&state.resources, &writer, id, &name, &expected).await?;
    Ok((etag_header(renamed.etag()), Json(ResourceView::from(renamed))).into_response())
}

/// `If-Match` of a write, for the OpenAPI document.
const IF_MATCH: &str = "Entity tags of the versions this write may replace (strong comparison; a `W/` tag never \
    matches), or `*` for any: when the resource is at another version (or the value is not `*` or a list of entity \
    tags), nothing changes and the answer is 412. Required when the server sets `require_if_match`.";
/// The 412 of a write, for the OpenAPI document.
const PRECONDITION_FAILED: &str = "The resource changed since you read it: `If-Match` does not name its current \
    version, which `current_etag` gives; read it again, then retry";
/// The 428 of a write, for the OpenAPI document.
const PRECONDITION_REQUIRED: &str = "`If-Match` is missing and the server requires it (`require_if_match`)";

/// Deletes a resource; only its owner may.
#[utoipa::path(
    delete,
    path = "/api/resource/v1/{id}",
    operation_id = "resource_v1_delete",
    tag = "resource",
    params(
        ("id" = i64, Path, description = "The resource's id", minimum = 1),
        ("If-Match" = Option<String>, Header, nullable = false, description = IF_MATCH),
    ),
    security(("oidc" = ["write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No resource has this id", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = PRECONDITION_FAILED, body = Problem, content_type = "application/problem+json"),
        (status = 428, description = PRECONDITION_REQUIRED, body = Problem, content_type = "application/problem+json"),
        WriteAccessProblems
    )
)]
async fn delete_resource(
    State(state): State<AppState>,
    Scoped(writer, _): Scoped<WriteScope>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = resource_id(&id)?;
    let expected = expected(&headers, id.get(), state.api.require_if_match)?;
    resources::delete(&state.resources, &writer, id, &expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

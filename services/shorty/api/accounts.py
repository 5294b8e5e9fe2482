"""API keys (your own) and administration (users and keys of everyone)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import changes_of, read_json, validate
from shorty.api.fields import Flag, KeyNameText, RateLimitText, Timestamp, optional
from shorty.api.params import ID_MAX, QueryInt, path_id
from shorty.bootstrap import api_deps_of
from shorty.core.accounts import DEFAULT_SCOPES, SESSION_KEY_ID
from shorty.core.links import check_expiry
from shorty.obs.audit import audit
from shorty.web.problems import Problem

Scope = Literal["urls:read", "urls:write", "stats:read", "keys:write", "admin"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyNameText = Field("", description="A label to tell keys apart (printable text).")
    scopes: list[Scope] | None = Field(
        None,
        min_length=1,
        max_length=5,
        description="Default: urls:read, urls:write and stats:read (those the minting key"
        " holds), plus keys:write when minted by a login session.",
    )
    expires_at: Timestamp | None = Field(
        None,
        description="A key minted by a key expires no later than it (default: when it does).",
    )


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from store.keys.ApiKey

    id: int
    prefix: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit: str | None
    parent_id: int | None = Field(description="The key that minted this one, if a key did.")


class KeyList(BaseModel):
    items: list[KeyOut]


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, never again.")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from store.users.User

    id: int
    email: str
    role: str
    disabled: bool
    created_at: datetime
    rate_limit: str | None
    max_links: int | None = Field(description="The user's own link quota; null: the default.")


class UserPage(BaseModel):
    items: list[UserOut]
    next_after_id: int | None = Field(None, description="Pass as ?after_id= for the next page.")


class UserPageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_id: QueryInt = Field(0, ge=0, le=ID_MAX, description="Users with a larger id.")
    limit: QueryInt = Field(100, ge=1, le=500)
    q: str | None = Field(None, max_length=254, description="Text in the email address.")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    disabled: Flag | None = optional()
    role: Literal["user", "admin"] | None = optional()
    rate_limit: RateLimitText | None = Field(
        None, description="e.g. 5000/hour, 300/15m, off; null: the default"
    )
    max_links: int | None = Field(
        None,
        strict=True,  # a number: not true, "7" or 7.0
        ge=0,
        le=2_000_000_000,
        description="Links the user may own, above or below SHORTY_MAX_LINKS_PER_USER;"
        " null: that default.",
    )


class KeyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_limit: RateLimitText | None = Field(
        description="e.g. 5000/hour, 300/15m, off; null: the default"
    )


async def create_key(request: Request) -> Response:
    """A new key for the caller's own user, with at most the caller's scopes; a key
    minted by a key never outlives it and takes its rate limit."""
    principal = await authenticate(request, "keys:write")
    settings = api_deps_of(request).settings
    body = await read_json(request, KeyCreate, settings.max_body_bytes)
    by_session = principal.key_id == SESSION_KEY_ID
    if body.scopes is not None:
        wanted: set[str] = set(body.scopes)
    elif by_session:
        wanted = {*DEFAULT_SCOPES, "keys:write"}
    else:
        wanted = set(DEFAULT_SCOPES) & principal.scopes
    if not wanted <= principal.scopes and not principal.is_admin:
        extra = ", ".join(sorted(wanted - principal.scopes))
        raise Problem(
            403,
            "insufficient-scope",
            "Insufficient scope",
            f"A key cannot grant what it does not have: {extra}.",
        )
    if not wanted:
        raise Problem(422, "validation-failed", "The request is not valid", "A key needs a scope.")
    expires_at = check_expiry(body.expires_at, datetime.now(UTC))
    keys = api_deps_of(request).keys
    key, raw = await keys.create(
        principal.user_id,
        name=body.name,
        scopes=tuple(wanted),
        expires_at=expires_at,
        parent_id=None if by_session else principal.key_id,
    )
    audit(
        "iam",
        "api-key-create",
        user__id=principal.user_id,
        shorty__key__id=key.id,
        shorty__key__parent_id=key.parent_id,
        shorty__key__scopes=list(key.scopes),
    )
    created = KeyCreated(**KeyOut.model_validate(key).model_dump(), key=raw)
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=201,
        headers={"Cache-Control": "no-store", "Location": f"/api/v1/keys/{key.id}"},
    )


async def list_keys(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    keys = api_deps_of(request).keys
    mine = await keys.list(user_id=principal.user_id)
    return JSONResponse(
        KeyList(items=[KeyOut.model_validate(k) for k in mine]).model_dump(mode="json")
    )


async def revoke_key(request: Request) -> Response:
    """Revoke one of the caller's keys (any key for an admin) and the keys it minted."""
    principal = await authenticate(request, "keys:write")
    keys = api_deps_of(request).keys
    key_id = path_id(request, "key_id")
    revoked = await keys.revoke_owned(key_id, owner_id=principal.owner_scope)
    if revoked is None:
        raise Problem(404, "key-not-found", "API key not found", f"No key has the id {key_id}.")
    audit(
        "iam",
        "api-key-revoke",
        user__id=principal.user_id,
        user__target__id=revoked.user_id,
        shorty__key__id=key_id,
    )
    return Response(status_code=204)


async def admin_list_users(request: Request) -> Response:
    await authenticate(request, "admin")
    query = validate(dict(request.query_params), UserPageQuery)
    users = api_deps_of(request).users
    page = await users.page(after_id=query.after_id, limit=query.limit, search=query.q or None)
    users_page = UserPage(
        items=[UserOut.model_validate(u) for u in page],
        next_after_id=page[-1].id if len(page) == query.limit else None,
    )
    return JSONResponse(users_page.model_dump(mode="json"))


async def admin_update_user(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    settings = api_deps_of(request).settings
    body = await read_json(request, UserPatch, settings.max_body_bytes)
    user_id = path_id(request, "user_id")
    changes = changes_of(body)
    if user_id == principal.user_id and (changes.get("disabled") or changes.get("role") == "user"):
        raise Problem(
            422,
            "validation-failed",
            "Not on yourself",
            "Admins cannot disable or demote themselves.",
        )
    users = api_deps_of(request).users
    user = await users.update(user_id, changes)
    if user is None:
        raise Problem(404, "user-not-found", "User not found", f"No user has the id {user_id}.")
    audit(
        "iam",
        "user-change",
        user__id=principal.user_id,
        user__target__id=user_id,
        shorty__changes={name: str(value) for name, value in changes.items()},
    )
    return JSONResponse(UserOut.model_validate(user).model_dump(mode="json"))


async def admin_update_key(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    deps = api_deps_of(request)
    body = await read_json(request, KeyPatch, deps.settings.max_body_bytes)
    key_id = path_id(request, "key_id")
    key = await deps.keys.set_limit(key_id, body.rate_limit)
    if key is None:
        raise Problem(404, "key-not-found", "API key not found", f"No key has the id {key_id}.")
    audit(
        "iam",
        "api-key-change",
        user__id=principal.user_id,
        user__target__id=key.user_id,
        shorty__key__id=key_id,
        shorty__changes={"rate_limit": str(body.rate_limit)},
    )
    return JSONResponse(KeyOut.model_validate(key).model_dump(mode="json"))

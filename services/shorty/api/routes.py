"""Every API route with what it takes and gives: the routing table and the
OpenAPI document are both built from this list."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shorty.api import (
    accounts,
    blocks,
    chaos,
    dlq,
    export,
    links,
    live,
    qr,
    refs,
    sessions,
    stats,
)
from shorty.api.openapi import Operation
from shorty.api.params import ID_SCHEMA
from shorty.api.schemas import (
    BlockRequest,
    BulkRequest,
    BulkResult,
    DeclaredLink,
    DeclareRequest,
    LinkDetail,
    LinkPage,
    LinkStats,
    ListQuery,
    QrQuery,
    RefQuery,
    ShortenRequest,
    StatsQuery,
    StatsSummary,
    SummaryQuery,
    UpdateRequest,
)
from shorty.worker.dlq import LETTER_ID

_LINK = {404: "No link with this code (or not yours)"}
# Rules a schema cannot say, shared by the operations that take a link's fields.
_TARGET = (
    "the target is not a URL Shorty redirects to: a host that is not a valid name, the"
    " service itself, on the block-list, a private address or a look-alike name; white"
    " space or control characters; longer than 2,048 characters once encoded"
)
_ALIAS = "the alias is a reserved word"
_FUTURE = "expires_at is not in the future, or more than 100 years ahead"
_FAR = "expires_at is more than 100 years ahead"
_TAGS = "a tag holds other than letters, digits, space and . : / + - _, or there are over 20"
_PERMANENT = "redirect_type is 301 or 308 and the link has expires_at or max_clicks"
_WINDOW = ("from is after to", "the series would have more than 2,000 points")
_SCOPE = {403: "The credential lacks the scope"}
_CREATES = {403: "The credential lacks the scope, or the user's link quota is reached"}
_REF = {404: "No link declared under this reference (or not yours)"}
_CHOICE = "neither ids nor all: true is sent, or both are"
_CHAOS = {**_SCOPE, 404: "Fault injection is off (SHORTY_CHAOS_ENABLED)"}

OPERATIONS: list[tuple[Route, Operation]] = [
    (
        Route("/api/v1/auth/register", sessions.register, methods=["POST"]),
        Operation(
            "Create an account (the same answer whether the address was free or taken)",
            "auth",
            body=sessions.Registration,
            responses={202: sessions.Registered},
            errors={403: "Registration is closed", 429: "Too many attempts"},
            public=True,
            refused=(
                "the address grows past 254 characters when lower-cased",
                "the address holds invisible or control characters",
            ),
        ),
    ),
    (
        Route("/api/v1/auth/login", sessions.login, methods=["POST"]),
        Operation(
            "Log in: an access token and a refresh token",
            "auth",
            body=sessions.Credentials,
            responses={200: sessions.TokenPair},
            errors={401: "The email or the password is wrong", 429: "Too many attempts"},
            public=True,
        ),
    ),
    (
        Route("/api/v1/auth/refresh", sessions.refresh, methods=["POST"]),
        Operation(
            "Spend a refresh token for a new pair",
            "auth",
            body=sessions.RefreshRequest,
            responses={200: sessions.TokenPair},
            errors={401: "Unknown, expired, revoked or reused refresh token"},
            public=True,
        ),
    ),
    (
        Route("/api/v1/auth/logout", sessions.logout, methods=["POST"]),
        Operation(
            "End the session of a refresh token",
            "auth",
            body=sessions.RefreshRequest,
            responses={204: None},
            public=True,
        ),
    ),
    (
        Route("/api/v1/auth/password", sessions.change_password, methods=["POST"]),
        Operation(
            "Change your password (a login session only); your other sessions end",
            "auth",
            body=sessions.PasswordChange,
            responses={204: None},
            errors={
                401: "Not logged in",
                403: "An API key, not a login session",
                429: "Too many attempts",
            },
            refused=(
                "current_password is not the account's password",
                "new_password is shorter than the minimum",
            ),
        ),
    ),
    (
        Route("/api/v1/shorten", links.shorten, methods=["POST"]),
        Operation(
            "Shorten a URL (Idempotency-Key honoured)",
            "links",
            body=ShortenRequest,
            responses={201: LinkDetail},
            errors={**_CREATES, 409: "Alias taken, or the same Idempotency-Key in progress"},
            refused=(_TARGET, _ALIAS, _FUTURE, _TAGS, _PERMANENT),
        ),
    ),
    (
        Route("/api/v1/urls", links.list_urls, methods=["GET"]),
        Operation(
            "List links, newest or most clicked first",
            "links",
            query=ListQuery,
            responses={200: LinkPage},
            refused=("cursor is not the next_cursor of a page",),
        ),
    ),
    (
        Route("/api/v1/urls/bulk", links.bulk, methods=["POST"]),
        Operation(
            "Shorten up to 1,000 URLs; each item on its own and one from the rate limits",
            "links",
            body=BulkRequest,
            responses={200: BulkResult},
            errors={
                **_SCOPE,
                413: "The body is too large, or holds more items than the rate limits allow",
            },
        ),
    ),
    (
        Route("/api/v1/urls/export.csv", export.export_csv, methods=["GET"]),
        Operation("Every link as CSV", "links", responses={200: "text/csv"}),
    ),
    (
        Route("/api/v1/urls/{code}", links.get_url, methods=["GET"]),
        Operation("A link and its click count", "links", responses={200: LinkDetail}, errors=_LINK),
    ),
    (
        Route("/api/v1/urls/{code}", links.update_url, methods=["PATCH"]),
        Operation(
            "Change a link (only the fields sent)",
            "links",
            body=UpdateRequest,
            responses={200: LinkDetail},
            errors={**_LINK, **_SCOPE},
            refused=(_TARGET, _TAGS, _FUTURE, _PERMANENT),
        ),
    ),
    (
        Route("/api/v1/urls/{code}", links.delete_url, methods=["DELETE"]),
        Operation("Delete a link", "links", responses={204: None}, errors={**_LINK, **_SCOPE}),
    ),
    (
        Route("/api/v1/refs", refs.put_declared, methods=["PUT"]),
        Operation(
            "Declare a link by reference: created whole, or changed where it differs",
            "links",
            body=DeclareRequest,
            query=RefQuery,
            responses={200: DeclaredLink, 201: DeclaredLink},
            errors={
                **_CREATES,
                409: "Alias taken, the reference another user's, or a code change asked for",
            },
            refused=(_TARGET, _ALIAS, _TAGS, _FAR, _PERMANENT),
        ),
    ),
    (
        Route("/api/v1/refs", refs.get_declared, methods=["GET"]),
        Operation(
            "The link declared under a reference",
            "links",
            query=RefQuery,
            responses={200: DeclaredLink},
            errors=_REF,
        ),
    ),
    (
        Route("/api/v1/refs", refs.delete_declared, methods=["DELETE"]),
        Operation(
            "Delete the link declared under a reference",
            "links",
            query=RefQuery,
            responses={204: None},
            errors={**_REF, **_SCOPE},
        ),
    ),
    (
        Route("/api/v1/urls/{code}/qr", qr.qr_code, methods=["GET"]),
        Operation(
            "The short URL as a QR code (?format=svg|png, ?size=1..40)",
            "links",
            query=QrQuery,
            responses={200: "image/svg+xml | image/png"},
            errors=_LINK,
        ),
    ),
    (
        Route("/api/v1/urls/{code}/stats", stats.link_stats, methods=["GET"]),
        Operation(
            "A link's clicks: totals, a series by hour or day, top values",
            "stats",
            query=StatsQuery,
            responses={200: LinkStats},
            errors={**_LINK, **_SCOPE, 422: "A parameter is not valid, or the range too large"},
            refused=_WINDOW,
        ),
    ),
    (
        Route("/api/v1/stats/summary", stats.summary, methods=["GET"]),
        Operation(
            "Clicks over all your links: totals, a series, top links and values",
            "stats",
            query=SummaryQuery,
            responses={200: StatsSummary},
            errors={
                403: "The credential lacks the scope, or all=true from a non-admin",
                422: "A parameter is not valid, or the range too large",
            },
            refused=_WINDOW,
        ),
    ),
    (
        Route("/api/v1/keys", accounts.create_key, methods=["POST"]),
        Operation(
            "Create an API key (shown once)",
            "keys",
            body=accounts.KeyCreate,
            responses={201: accounts.KeyCreated},
            errors=_SCOPE,
            refused=(
                "name holds characters that are not printable",
                _FUTURE,
                "expires_at is past the minting key's own expiry",
            ),
        ),
    ),
    (
        Route("/api/v1/keys", accounts.list_keys, methods=["GET"]),
        Operation("Your API keys", "keys", responses={200: accounts.KeyList}),
    ),
    (
        Route("/api/v1/keys/{key_id}", accounts.revoke_key, methods=["DELETE"]),
        Operation(
            "Revoke one of your API keys",
            "keys",
            path={"key_id": ID_SCHEMA},
            responses={204: None},
            errors={404: "No such key (or not yours)"},
        ),
    ),
    (
        Route("/api/v1/admin/users", accounts.admin_list_users, methods=["GET"]),
        Operation(
            "Users, by id (?after_id=, ?limit=)",
            "admin",
            query=accounts.UserPageQuery,
            responses={200: accounts.UserPage},
            errors=_SCOPE,
        ),
    ),
    (
        Route("/api/v1/admin/users/{user_id}", accounts.admin_update_user, methods=["PATCH"]),
        Operation(
            "Disable a user, change their role, rate limit or link quota",
            "admin",
            path={"user_id": ID_SCHEMA},
            body=accounts.UserPatch,
            responses={200: accounts.UserOut},
            errors={**_SCOPE, 404: "No such user"},
            refused=("an admin disables or demotes themselves",),
        ),
    ),
    (
        Route("/api/v1/admin/urls/{code}/block", blocks.block, methods=["PUT"]),
        Operation(
            "Block a link (410; 451 for a legal reason) — its owner cannot lift it",
            "admin",
            body=BlockRequest,
            responses={200: LinkDetail},
            errors={**_SCOPE, **_LINK},
        ),
    ),
    (
        Route("/api/v1/admin/urls/{code}/block", blocks.unblock, methods=["DELETE"]),
        Operation(
            "Lift a link's block",
            "admin",
            responses={200: LinkDetail},
            errors={**_SCOPE, **_LINK},
        ),
    ),
    (
        Route("/api/v1/admin/keys/{key_id}", accounts.admin_update_key, methods=["PATCH"]),
        Operation(
            "Change a key's rate limit",
            "admin",
            path={"key_id": ID_SCHEMA},
            body=accounts.KeyPatch,
            responses={200: accounts.KeyOut},
            errors={**_SCOPE, 404: "No such key"},
        ),
    ),
    (
        Route("/api/v1/admin/live", live.live, methods=["GET"]),
        Operation(
            "Every service's figures now, from its own metrics and /readyz (at most a second"
            " old): request and error rates, p99, cache hits, clicks, stream lag, dead"
            " letters, each dependency's health and breaker",
            "admin",
            responses={200: live.LiveSnapshot},
            errors=_SCOPE,
        ),
    ),
    (
        Route("/api/v1/admin/dlq", dlq.letters, methods=["GET"]),
        Operation(
            "The dead-letter stream: its size and letters, oldest first (?after=, ?limit=)",
            "admin",
            query=dlq.LetterQuery,
            responses={200: dlq.LetterPage},
            errors={**_SCOPE, 503: "Redis cannot be reached"},
        ),
    ),
    (
        Route("/api/v1/admin/dlq/replay", dlq.replay, methods=["POST"]),
        Operation(
            "Write letters back to their streams (some by ID, or all present now)",
            "admin",
            body=dlq.LetterChoice,
            responses={200: dlq.Replayed},
            errors={**_SCOPE, 503: "Redis cannot be reached"},
            refused=(_CHOICE, "a letter names a stream that is not Shorty's"),
        ),
    ),
    (
        Route("/api/v1/admin/dlq/purge", dlq.purge, methods=["POST"]),
        Operation(
            "Delete letters for good (some by ID, or all present now)",
            "admin",
            body=dlq.LetterChoice,
            responses={200: dlq.Purged},
            errors={**_SCOPE, 503: "Redis cannot be reached"},
            refused=(_CHOICE,),
        ),
    ),
    (
        Route("/api/v1/admin/dlq/{letter_id}", dlq.letter, methods=["GET"]),
        Operation(
            "One letter in full",
            "admin",
            path={"letter_id": {"type": "string", "pattern": f"^{LETTER_ID.pattern}$"}},
            responses={200: dlq.LetterOut},
            errors={**_SCOPE, 404: "No letter has this ID", 503: "Redis cannot be reached"},
        ),
    ),
    (
        Route("/api/v1/admin/chaos", chaos.start, methods=["POST"]),
        Operation(
            "Start a fault-injection experiment: latency, errors or an outage of PostgreSQL"
            " or Redis in every service process, for 1 to 3,600 s",
            "admin",
            body=chaos.ExperimentStart,
            responses={201: chaos.ExperimentOut},
            errors={**_CHAOS, 409: "An experiment is already in force on this dependency"},
        ),
    ),
    (
        Route("/api/v1/admin/chaos", chaos.history, methods=["GET"]),
        Operation(
            "Fault-injection experiments, newest first: in force and past",
            "admin",
            query=chaos.HistoryQuery,
            responses={200: chaos.ExperimentList},
            errors=_CHAOS,
        ),
    ),
    (
        Route("/api/v1/admin/chaos/{experiment_id}/stop", chaos.stop, methods=["POST"]),
        Operation(
            "Stop a fault-injection experiment now (one already ended is answered as it is)",
            "admin",
            path={"experiment_id": ID_SCHEMA},
            responses={200: chaos.ExperimentOut},
            errors={
                **_SCOPE,
                404: "Fault injection is off, or no experiment has this id",
            },
        ),
    ),
]


def routing_table(operations: list[tuple[Route, Operation]]) -> list[Route]:
    """One Route per path, dispatching on the method: a method the path does not take
    is then 405 with an ``Allow`` header naming every method it does take (RFC 9110
    section 15.5.6), not only those of the first route that matched the path.

    ``{code}`` never matches a literal path beside it: ``/urls/bulk`` and
    ``/urls/export.csv`` are always those routes (a PATCH of them is 405), never a
    link named ``bulk`` (a reserved word, so no link has that code)."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for route, _ in operations:
        for method in route.methods or ():
            by_path.setdefault(route.path, {})[method] = route.endpoint
    return [
        Route(
            path.replace("{code}", "{code:code}").replace("{letter_id}", "{letter_id:letter}"),
            _dispatcher(endpoints),
            methods=sorted(endpoints),
            name=path,
        )
        for path, endpoints in by_path.items()
    ]


def code_convertor(literals: set[str]) -> Convertor[str]:
    """A path segment that is not one of ``literals`` (the handler then checks it is
    a code: anything else is 404 link-not-found, without a lookup)."""

    class CodeConvertor(Convertor[str]):
        regex = f"(?!(?:{'|'.join(map(re.escape, sorted(literals)))})$)[^/]+"

        def convert(self, value: str) -> str:
            return value

        def to_string(self, value: str) -> str:
            return value

    return CodeConvertor()


def _literal_siblings(operations: list[tuple[Route, Operation]]) -> set[str]:
    """The last segments of literal paths that a ``.../{code}`` path would also match."""
    parents = {r.path.rsplit("/", 1)[0] for r, _ in operations if r.path.endswith("/{code}")}
    return {
        r.path.rsplit("/", 1)[1]
        for r, _ in operations
        if r.path.rsplit("/", 1)[0] in parents and "{" not in r.path.rsplit("/", 1)[1]
    }


register_url_convertor("code", code_convertor(_literal_siblings(OPERATIONS)))


class LetterConvertor(Convertor[str]):
    """A dead letter's ID, and nothing else: /admin/dlq/replay stays that route (a GET
    of it is 405), and an ID Redis could not take is 404 without asking it."""

    regex = LETTER_ID.pattern

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("letter", LetterConvertor())


Endpoint = Callable[[Request], Awaitable[Response]]


def _dispatcher(endpoints: dict[str, Endpoint]) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        return await endpoints[request.method](request)

    return dispatch

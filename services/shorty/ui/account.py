"""Sign up, log in, log out and change the password: the API's own accounts and
rules (``/api/v1/auth``), with the session in a cookie (``session.py``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shorty.bootstrap import api_deps_of
from shorty.core.accounts import PASSWORD_MIN
from shorty.ui import session
from shorty.ui.client import api_of
from shorty.ui.forms import Form, errors_of
from shorty.ui.render import page, refused, safe_next, see, to_login
from shorty.ui.session import Viewer


async def home(request: Request) -> Response:
    signed = await session.viewer(request)
    return see("/ui/links" if signed else "/ui/login")


async def login_page(request: Request) -> Response:
    if await session.viewer(request):
        return see(safe_next(request.query_params.get("next", "")))
    context = {"email": "", "errors": {}, "error": "", "next": request.query_params.get("next", "")}
    return await page(request, "login.html", context, section="login")


async def login(request: Request, form: Form) -> Response:
    email, back = form.text("email"), form.text("next")
    context = {"email": email, "errors": {}, "error": "", "next": back}
    body = {"email": email, "password": form.raw("password")}
    answer = await api_of(request).call(request, "POST", "/api/v1/auth/login", body=body)
    if not answer.ok:
        errors, message = errors_of(answer.problem, ["email", "password"])
        context.update(errors=errors, error=message or "Login failed.")
        return await page(request, "login.html", context, status=answer.status, section="login")
    response = see(safe_next(back))
    session.start(request, response, answer.json()["refresh_token"])
    return response


async def signup_page(request: Request) -> Response:
    context = _signup_context(request, "", {}, "")
    return await page(request, "signup.html", context, section="signup")


async def signup(request: Request, form: Form) -> Response:
    email, password = form.text("email"), form.raw("password")
    if password != form.raw("repeat"):
        context = _signup_context(request, email, {"repeat": "The passwords differ."}, "")
        return await page(request, "signup.html", context, status=422, section="signup")
    api = api_of(request)
    body = {"email": email, "password": password}
    answer = await api.call(request, "POST", "/api/v1/auth/register", body=body)
    if not answer.ok:
        errors, message = errors_of(answer.problem, ["email", "password"])
        if answer.problem.get("type", "").endswith("/invalid-account") and not errors:
            errors, message = {_account_field(message): message}, ""
        context = _signup_context(request, email, errors, message)
        return await page(request, "signup.html", context, status=answer.status, section="signup")
    # The same answer whether the address was free or taken: a login tells which,
    # and only to whoever knows the account's password.
    logged_in = await api.call(request, "POST", "/api/v1/auth/login", body=body)
    if not logged_in.ok:
        return see("/ui/login", "registered")
    response = see("/ui/links", "signed-up")
    session.start(request, response, logged_in.json()["refresh_token"])
    return response


def _signup_context(
    request: Request, email: str, errors: dict[str, str], error: str
) -> dict[str, Any]:
    return {
        "email": email,
        "errors": errors,
        "error": error,
        "closed": not api_deps_of(request).settings.registration_open,
        "password_min": PASSWORD_MIN,
    }


def _account_field(message: str) -> str:
    return "password" if "password" in message.lower() else "email"


async def logout(request: Request, form: Form) -> Response:
    signed = await session.viewer(request)
    if signed is not None:
        body = {"refresh_token": signed.refresh_token}
        answer = await api_of(request).call(request, "POST", "/api/v1/auth/logout", body=body)
        if not answer.ok:
            return await refused(request, answer)
    response = see("/ui/login", "logged-out")
    session.end(request, response)
    return response


async def account_page(request: Request, signed: Viewer) -> Response:
    return await page(request, "account.html", _account_context({}, ""), section="account")


async def change_password(request: Request, signed: Viewer, form: Form) -> Response:
    new = form.raw("new_password")
    if new != form.raw("repeat"):
        context = _account_context({"repeat": "The passwords differ."}, "")
        return await page(request, "account.html", context, status=422, section="account")
    body = {"current_password": form.raw("current_password"), "new_password": new}
    answer = await api_of(request).call(
        request, "POST", "/api/v1/auth/password", token=signed.token, body=body
    )
    if answer.status == 401:
        return to_login(request)
    if not answer.ok:
        errors, message = errors_of(answer.problem, ["current_password", "new_password"])
        if answer.problem.get("type", "").endswith("/invalid-account") and not errors:
            errors, message = {"new_password": message}, ""
        context = _account_context(errors, message)
        return await page(request, "account.html", context, status=answer.status, section="account")
    return see("/ui/account", "password")


def _account_context(errors: dict[str, str], error: str) -> dict[str, Any]:
    return {"errors": errors, "error": error, "password_min": PASSWORD_MIN}

"""Wiring the console into the application: its pages, its static files, the vendored front-end
packages, the district map, the offline API docs, and error pages instead of JSON on console paths.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from huimin.config import Settings
from huimin.console.allocation_pages import router as allocation_router
from huimin.console.assets import VendorAssets
from huimin.console.audit_pages import router as audit_router
from huimin.console.complaint_pages import router as complaint_router
from huimin.console.deps import SignInRequired
from huimin.console.h5 import router as h5_router
from huimin.console.money_pages import router as money_router
from huimin.console.pages import console_error
from huimin.console.pages import router as pages_router
from huimin.console.redemption_pages import router as redemption_router
from huimin.console.report_pages import router as report_router
from huimin.console.resident_pages import router as resident_router
from huimin.console.risk_pages import router as risk_router
from huimin.console.settlement_pages import router as settlement_router
from huimin.console.till_pages import router as till_router
from huimin.console.web import CONSOLE_PREFIX, is_console, render
from huimin.errors import HuiminError

__all__ = ["mount_console"]

STATIC = f"{CONSOLE_PREFIX}/static"


@cache
def _districts_geojson() -> bytes:
    return (resources.files("huimin.eligibility") / "data" / "ziyang_districts.geojson").read_bytes()


def mount_console(app: FastAPI, settings: Settings) -> None:
    """Call after the JSON error handlers are installed: console paths get pages, the rest keeps JSON.
    Raises ConfigurationError (naming `npm ci`) when the front-end packages are not installed."""
    assets = VendorAssets.locate(settings)

    # Routes before the static mount, which would otherwise answer for /console/static/vendor/...
    @app.get(f"{STATIC}/vendor/{{name}}", include_in_schema=False)
    async def vendor_file(name: str) -> FileResponse:
        path = assets.path(name)
        if path is None:
            raise StarletteHTTPException(404, f"no vendor file {name!r}")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})

    @app.get(f"{STATIC}/geo/ziyang-districts.json", include_in_schema=False)
    async def districts() -> Response:
        # Public boundaries (GCJ-02) of the three districts, shipped with the package.
        return Response(
            _districts_geojson(),
            media_type="application/geo+json",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PREFIX}/", status_code=303)

    _mount_docs(app)
    for router in (
        pages_router,
        redemption_router,
        money_router,
        settlement_router,
        report_router,
        audit_router,
        till_router,
        risk_router,
        complaint_router,
        h5_router,
        allocation_router,
        resident_router,
    ):
        app.include_router(router)
    app.mount(STATIC, StaticFiles(packages=[("huimin.console", "static")]), name="console-static")
    _install_page_errors(app)


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI from the installed swagger-ui-dist, started by our own script: no CDN, and the page
    holds under the same Content-Security-Policy as every other page."""

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return render(request, "docs.html", {"openapi_url": app.openapi_url, "title": app.title})


def _install_page_errors(app: FastAPI) -> None:
    json_handlers: dict[Any, Any] = dict(app.exception_handlers)

    async def sign_in_required(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)  # noqa: S101 (registered for this class only)
        target = f"{CONSOLE_PREFIX}/sign-in"
        query = ["reason=expired"] if error.expired else []
        if request.method == "GET":
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            query.append(f"next={quote(path, safe='/')}")
        return RedirectResponse(f"{target}?{'&'.join(query)}" if query else target, status_code=303)

    async def huimin_error(request: Request, error: Exception) -> Response:
        if is_console(request) and isinstance(error, HuiminError):
            return console_error(request, error)
        return await json_handlers[HuiminError](request, error)  # type: ignore[no-any-return]

    async def http_error(request: Request, error: Exception) -> Response:
        if is_console(request) and isinstance(error, StarletteHTTPException):
            return console_error(
                request, HuiminError(str(error.detail), code="http_error", status=error.status_code)
            )
        return await json_handlers[StarletteHTTPException](request, error)  # type: ignore[no-any-return]

    async def invalid_request(request: Request, error: Exception) -> Response:
        if is_console(request) and isinstance(error, RequestValidationError):
            fields = ", ".join(".".join(str(part) for part in item["loc"][1:]) for item in error.errors())
            return console_error(request, HuiminError(fields, code="invalid_request", status=422))
        return await json_handlers[RequestValidationError](request, error)  # type: ignore[no-any-return]

    async def unexpected(request: Request, error: Exception) -> Response:
        response: Response = await json_handlers[Exception](request, error)  # logs it
        if is_console(request):
            return console_error(request, HuiminError("internal error", code="internal_error", status=500))
        return response

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(HuiminError, huimin_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)

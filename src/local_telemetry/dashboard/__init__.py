"""The web dashboard served at ``/`` beside the API (Jinja2 + htmx + uPlot, no build step).

``install(app)`` mounts the vendored static files, the sign-in routes and every page;
pages live one module each (``overview``, ``runs``, ``agents``, ``alerts``) and share
``web.py`` (templates, filters, security headers) and ``auth.py`` (sign-in, CSRF).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRouter
from fastapi.staticfiles import StaticFiles

from local_telemetry.api.background import PeriodicJob
from local_telemetry.dashboard import auth
from local_telemetry.dashboard.page_cache import WARM_INTERVAL_SECONDS, PageCache
from local_telemetry.dashboard.web import PAGE_HEADERS, STATIC


def page_router() -> APIRouter:
    """A router for dashboard pages: hidden from OpenAPI, every route behind sign-in."""
    return APIRouter(include_in_schema=False, dependencies=[Depends(auth.require_login)])


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, auth.LoginRequired)
    return auth.login_redirect(request, exc)


async def _csrf_rejected(request: Request, exc: Exception) -> Response:
    return HTMLResponse(
        "<!doctype html><title>Forbidden</title><p>Forbidden: the form's CSRF token is "
        "missing or wrong. Reload the page and try again.</p>",
        status_code=403,
        headers=PAGE_HEADERS,
    )


def install(app: FastAPI) -> None:
    """Serve the dashboard from ``app``."""
    from local_telemetry.dashboard import overview, pages

    app_state = app.state.local_telemetry
    refresh = app_state.settings.dashboard_refresh_seconds
    cache = PageCache(fresh=refresh)
    app.state.dashboard_page_cache = cache
    overview.pin_standard_views(cache, app_state)
    if refresh > 0:
        interval = min(WARM_INTERVAL_SECONDS, refresh / 2)
        app_state.jobs.add(PeriodicJob("dashboard-views", interval, cache.warm))
    app_state.jobs.on_stop(cache.stop)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(auth.LoginRequired, _login_required)
    app.add_exception_handler(auth.CsrfRejected, _csrf_rejected)
    app.include_router(auth.router)
    for router in pages.routers():
        app.include_router(router)

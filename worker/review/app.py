"""The review pages as an ASGI application, mounted under /review by the intake API."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from worker.review.routes import router
from worker.review.service import ItemNotFoundError
from worker.review.web import (
    CsrfError,
    LoginRequiredError,
    ReviewSessionMiddleware,
    base_path,
    render,
    security_headers,
)


def create_review_app() -> FastAPI:
    app = FastAPI(title="Sluice review", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    app.add_exception_handler(LoginRequiredError, _to_login)
    app.add_exception_handler(CsrfError, _csrf_failed)
    app.add_exception_handler(RequestValidationError, _not_found)
    app.add_exception_handler(ItemNotFoundError, _item_not_found)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.middleware("http")(security_headers)
    app.add_middleware(ReviewSessionMiddleware)
    return app


async def _to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequiredError)
    target = f"{base_path(request)}/login"
    if exc.next_path.startswith(base_path(request) + "/"):
        target += "?" + urlencode({"next": exc.next_path})
    return RedirectResponse(target, status_code=303)


async def _csrf_failed(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {
        "reviewer": None,
        "message": "The form expired or did not come from this site, so nothing was "
                   "changed. Reload the page and submit it again.",
    }, status_code=403)


async def _not_found(request: Request, exc: Exception) -> Response:
    # Path parameters are the only validated request parts here: a malformed item id.
    return render(request, "error.html", {
        "reviewer": None, "message": f"There is no review page at {request.url.path}.",
    }, status_code=404)


async def _item_not_found(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {"reviewer": None, "message": f"{exc}."},
                  status_code=404)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods get a page, not the intake API's JSON errors.
    assert isinstance(exc, StarletteHTTPException)
    return render(request, "error.html", {
        "reviewer": None, "message": f"{exc.detail}: {request.method} {request.url.path}.",
    }, status_code=exc.status_code)

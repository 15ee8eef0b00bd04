"""Our own static files, for when nothing in front of daphne serves /static/."""

from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from django.views.static import serve

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "web"
MAX_AGE = 300


@require_GET
def static_file(request: HttpRequest, path: str) -> HttpResponse:
    """web/static/web/ in the one-process default. Behind a proxy, the proxy answers
    /static/ from collectstatic's output and this view is never reached."""
    if any(part in ("", ".", "..") for part in path.split("/")) or "\\" in path:
        raise Http404("No such file")
    response = serve(request, path, document_root=STATIC_DIR)
    response["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response

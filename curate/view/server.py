"""The viewer's HTTP server: the standard library's ``ThreadingHTTPServer``, GET only, pages rendered per request
from the run folder (``curate.view.pages``), images straight from a row's parquet cell, the stylesheet from the
package. Every response forbids scripts and any other origin (Content-Security-Policy), so even a row that slipped
past escaping could run nothing."""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from curate.view import pages
from curate.view.html import el
from curate.view.rows import RowCache
from curate.view.runfolder import RunFolder

CSP = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; base-uri 'none'"
log = logging.getLogger("curate.view")


class NotFound(Exception):
    """The path names no page, step, row or image of this run."""


def image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"


class Viewer:
    """What the handler serves: one run folder and the row readers' caches."""

    def __init__(self, run: RunFolder):
        self.run, self.cache = run, RowCache()

    def page(self, path: str, query: dict[str, str]) -> tuple[str, str | bytes]:
        """(content type, body) for a GET of ``path``; NotFound when there is nothing there."""
        run, parts = self.run, [unquote(p) for p in path.strip("/").split("/") if p]
        offset = max(int(query.get("offset") or 0), 0)
        if not parts:
            return "text/html", pages.layout(f"run {run.name()}", pages.run_page(run))
        if parts == ["static", "view.css"]:
            return "text/css", pages.stylesheet()
        if parts[0] == "step" and len(parts) == 2:
            try:
                body = pages.step_page(run, self.cache, parts[1], "rejects" if query.get("show") == "rejects"
                                       else "kept", query.get("reason", ""), query.get("q", ""), offset)
            except KeyError as exc:
                raise NotFound(f"no step {parts[1]} in {run.path}") from exc
            return "text/html", pages.layout(f"{run.name()} · {parts[1]}", body)
        if parts[0] == "image" and len(parts) == 4:
            try:
                kept = self.cache.kept(run.step(parts[1]).folder)
                image = kept.row(int(parts[2]), int(parts[3]), ["image"])["image"]
            except (KeyError, ValueError) as exc:
                raise NotFound(f"no image at {path}") from exc
            if not image or not image.get("bytes"):
                raise NotFound(f"row {parts[3]} of part {parts[2]} has no image")
            return image_type(image["bytes"]), image["bytes"]
        if parts == ["source"]:
            doc, page = query.get("doc", ""), int(query.get("page") or 0)
            return "text/html", pages.layout(f"{doc} · page {page}", pages.source_page(run, doc, page))
        if parts == ["pdfpage"]:
            return "image/png", pdf_page_png(run, query.get("doc", ""), int(query.get("page") or 0))
        if parts == ["delivery"]:
            return "text/html", pages.layout(f"{run.name()} · delivery", pages.delivery_page(run, offset))
        raise NotFound(f"no page {path}")


def pdf_page_png(run: RunFolder, doc: str, page: int) -> bytes:
    """The PDF page behind an ingested page row, rendered at 1x with pypdfium2 (the ``fast`` extra)."""
    import io

    rows = pages.source_rows(run, doc, page)
    origin = (rows[0].get("provenance") or {}).get("origin") if rows else None
    try:
        import pypdfium2
    except ImportError as exc:
        raise NotFound("rendering a PDF page needs pypdfium2: pip install 'curate[fast]'") from exc
    if not origin or not origin.lower().endswith(".pdf"):
        raise NotFound(f"page {page} of {doc} does not come from a local PDF")
    try:
        pdf = pypdfium2.PdfDocument(origin)
        picture = pdf[page - 1].render(scale=1).to_pil()
    except (pypdfium2.PdfiumError, OSError, IndexError) as exc:
        raise NotFound(f"cannot render page {page} of {origin}: {exc}") from exc
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def make_handler(viewer: Viewer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "curate-view"

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                kind, body = viewer.page(url.path, query)
                status = HTTPStatus.OK
            except NotFound as exc:
                kind, body, status = "text/html", pages.layout("not found", el("p", str(exc))), \
                    HTTPStatus.NOT_FOUND
            except ValueError as exc:
                kind, body, status = "text/html", pages.layout("bad request", el("p", str(exc))), \
                    HTTPStatus.BAD_REQUEST
            except Exception as exc:  # a page that cannot be read (a file being replaced, a corrupt part): say so
                log.exception("curate view: %s failed", self.path)
                message = el("p", f"{url.path} could not be shown: {type(exc).__name__}: {exc}")
                kind, body, status = "text/html", pages.layout("error", message), HTTPStatus.INTERNAL_SERVER_ERROR
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", kind + ("; charset=utf-8" if kind.startswith("text/") else ""))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


def make_server(run: RunFolder, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A server for ``run`` bound to ``host:port`` (port 0: any free port; ``server.server_address`` says which)."""
    server = ThreadingHTTPServer((host, port), make_handler(Viewer(run)))
    server.daemon_threads = True
    return server


def serve_in_thread(run: RunFolder, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns it and its base URL (``server.shutdown()`` stops it)."""
    server = make_server(run, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{server.server_address[0]}:{server.server_address[1]}"

"""Error responses for `tcpkb serve`: quick, quiet, and 4xx for whatever the request got wrong.

Datasette 0.65's own handler (datasette/handle_exception.py) prints a rich traceback with
every local variable for each error whenever `rich` is importable, which Typer makes it: a
404 then costs about a second of CPU, and a 404 with no exception behind it (a `..` path)
makes rich itself raise, so it answers 500. It also answers 500 for request parameters it
cannot read: a `_sort` column that does not exist (a DatasetteError left at its default
status) or a number that is not one (`_timelimit=x`, a ValueError from int()).

The plugin's handle_exception wrapper (plugin.py) drops that handler's answer for this one,
which renders the same template and JSON without printing anything, and reads those two cases
as the client's (400). Anything else is a fault of the server: 500, and one line on stderr.
"""

from __future__ import annotations

import asyncio
import sys
import time

from datasette.utils import add_cors_headers
from datasette.utils.asgi import Base400, Response
from datasette.views.base import DatasetteError
from markupsafe import Markup

# Exceptions Datasette lets escape while it parses the query string (int(), json.loads())
UNREADABLE_PARAMETER = (ValueError,)


def is_datasette_default(result) -> bool:
    """Whether a handle_exception result is Datasette's own handler's (the one that prints)."""
    return getattr(result, "__module__", None) == "datasette.handle_exception"


def classify(exception: BaseException) -> tuple[int, str, str | None, dict]:
    """(status, message, title, extra JSON fields) for an exception, without printing it."""
    if isinstance(exception, Base400):
        return exception.status, str(exception.args[0] if exception.args else exception.status), None, {}
    if isinstance(exception, DatasetteError):
        message = Markup(exception.message) if exception.message_is_html else exception.message
        # Datasette's views raise their errors about parameters (an unknown `_sort` column,
        # `_sort` with `_sort_desc`, a bad `_through`, a filter SQLite rejects) at the
        # default status, 500; the database is immutable and its SQL canned, so it is the request.
        status = 400 if exception.status == 500 else exception.status
        return status, message, exception.title, dict(exception.error_dict)
    if isinstance(exception, UNREADABLE_PARAMETER):
        return 400, f"a parameter could not be read: {exception}", "Bad request", {}
    return 500, f"internal error ({type(exception).__name__})", None, {}


def log_fault(method: str, path, exception: BaseException) -> None:
    """One line per server fault, never the traceback: a flood of them must stay cheap.
    Shown with repr(), so nothing a visitor put in the URL reaches the terminal raw."""
    print(f"tcpkb serve: 500 on {method[:20]} {path[:300]!r}: {type(exception).__name__}: "
          f"{str(exception)[:300]!r}", file=sys.stderr, flush=True)


def quiet_error(datasette, request, exception: BaseException):
    """What Datasette's default handler answers, minus the printing and the 500s above."""
    async def respond() -> Response:
        status, message, title, info = classify(exception)
        if status >= 500:
            log_fault(request.method, request.path, exception)
        info.update({"ok": False, "error": message, "status": status, "title": title})
        headers: dict = {}
        if datasette.cors:
            add_cors_headers(headers)
        if request.path.split("?")[0].endswith(".json"):
            return Response.json(info, status=status, headers=headers)
        template = datasette.jinja_env.select_template([f"{status}.html", "error.html"])
        body = await template.render_async(dict(info, urls=datasette.urls,
                                                app_css_hash=datasette.app_css_hash(),
                                                menu_links=lambda: []))
        return Response.html(body, status=status, headers=headers)

    return respond


# --- before Datasette: requests it would answer with a 500 ------------------------------------

async def _plain(send, status: int, text: str, headers: tuple = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers]})
    await send({"type": "http.response.body", "body": text.encode()})


def refusal(scope) -> tuple[int, str, tuple] | None:
    """(status, text, headers) for a request refused outright, or None to serve it."""
    if scope["method"] not in ("GET", "HEAD"):  # 0.65 answers a POST to a table with a 500
        return 405, "405: this site is read-only\n", ((b"allow", b"GET, HEAD"),)
    raw_path = scope.get("raw_path") or b""
    if not raw_path.isascii():  # Datasette decodes the raw path as ASCII
        return 400, "400: a URL path is ASCII; percent-encode the rest\n", ()
    # no name, column or word here holds a NUL, and SQLite refuses a statement with one in it
    # (Datasette writes a `_facet` column's name into its SQL)
    if b"%00" in raw_path or b"%00" in scope.get("query_string", b""):
        return 400, "400: a NUL (%00) in the URL\n", ()
    for name, value in scope.get("headers", ()):
        if name.lower() == b"cookie":  # asgi_csrf decodes every cookie as UTF-8
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return 400, "400: a cookie that is not UTF-8\n", ()
    return None


class ErrorBudget:
    """Error answers each client address may have at full speed: RATE a second, BURST at once.

    A client past its budget still gets every answer, but each error waits for the budget to
    refill (at most MAX_WAIT): a flood of misses from a few addresses then costs the server
    what RATE errors a second cost, and the pages other requests want are not queued behind
    it. Answers of 2xx and 3xx never wait, so a reader sharing the address (a NAT, a proxy,
    loopback) is not slowed. A client that does not wait for its answers is not slowed by
    this; it is one of the things a reverse proxy in front is for.
    """

    RATE, BURST, MAX_WAIT, MAX_CLIENTS = 20.0, 40.0, 5.0, 10_000

    def __init__(self):
        self.tokens: dict[str, tuple[float, float]] = {}  # address -> (tokens, when counted)

    def wait_for(self, address: str, now: float | None = None) -> float:
        """Seconds this error answer waits; takes one token (the debt is bounded by MAX_WAIT)."""
        now = time.monotonic() if now is None else now
        tokens, then = self.tokens.get(address, (self.BURST, now))
        tokens = min(self.BURST, tokens + (now - then) * self.RATE) - 1
        tokens = max(tokens, -self.MAX_WAIT * self.RATE)
        if len(self.tokens) >= self.MAX_CLIENTS and address not in self.tokens:
            self.forget_refilled(now)
        self.tokens[address] = (tokens, now)
        return max(0.0, -tokens / self.RATE)

    def forget_refilled(self, now: float) -> None:
        """Drop the addresses whose budget is whole again: the table stays bounded."""
        for address, (tokens, then) in list(self.tokens.items()):
            if tokens + (now - then) * self.RATE >= self.BURST:
                del self.tokens[address]
        if len(self.tokens) >= self.MAX_CLIENTS:  # all in debt: start over rather than grow
            self.tokens.clear()


def guard(app):
    """The ASGI app behind `tcpkb serve`: read-only methods, readable requests, and a last
    line of defence that answers an escaped exception with one log line, not a traceback,
    and an error budget per client address (ErrorBudget)."""
    budget = ErrorBudget()

    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        started = False
        address = (scope.get("client") or ("?",))[0]

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400 and (wait := budget.wait_for(address)):
                    await asyncio.sleep(wait)
            await send(message)

        refused = refusal(scope)
        if refused:
            return await _plain(tracking_send, *refused)
        try:
            await app(scope, receive, tracking_send)
        except Exception as e:  # noqa: BLE001 - the server stays up and quiet whatever broke
            log_fault(scope["method"], scope.get("raw_path") or scope.get("path", ""), e)
            if not started:
                await _plain(send, 500, "500: internal error\n")
    return guarded

"""`tcpkb serve`: the database as a read-only Datasette site whose JSON API is the lookup API.

make_datasette() is what both the command and the tests run: the built database opened
immutable (Datasette's -i), the metadata and templates shipped in the package, the tcpkb
plugin (web.py) registered beside the installed datasette-* plugins, and settings that make
the site safe to expose: no arbitrary SQL, bounded time and rows, no downloads.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

# Datasette settings: read-only and bounded, whatever a visitor sends.
SETTINGS = {
    "default_allow_sql": False,  # canned queries and table filters only, no SQL box
    "sql_time_limit_ms": 500,
    "max_returned_rows": 200,
    "default_page_size": 50,
    "allow_download": False,
    "allow_csv_stream": False,
    "suggest_facets": False,  # each suggestion is a query per column; the facets are declared
    "facet_time_limit_ms": 100,
    "default_cache_ttl": 3600,  # the database never changes while it is served
}


def metadata() -> dict:
    """metadata.yaml, with each kind's tables described from its module in tcpkb.kinds."""
    import yaml

    from ..kinds import KINDS

    data = yaml.safe_load((HERE / "metadata.yaml").read_text())
    tables = data["databases"]["tcpkb"]["tables"]
    for kind in KINDS.values():
        for table, (description, columns) in kind.descriptions.items():
            meta = tables.setdefault(table, {})
            meta.setdefault("description", description)
            own = {"id": "The entry's id", "name": "The entry's name"} if table == kind.table else {}
            meta["columns"] = {**own, **columns, **meta.get("columns", {})}
    tables["entries"]["columns"]["kind"] = "one of: " + ", ".join(KINDS)
    return data


def make_datasette(db_path: str | Path):
    """A Datasette instance serving db_path read-only as the database `tcpkb`."""
    from datasette.app import Datasette
    from datasette.database import Database
    from datasette.plugins import pm

    from . import plugin as web

    if not pm.is_registered(web):
        pm.register(web, name="tcpkb")
    from jinja2 import ChoiceLoader, FileSystemLoader

    from ..present.page import template_dir

    ds = Datasette(metadata=metadata(), settings=SETTINGS, template_dir=str(HERE / "templates"))
    # the entry article and kind table are the static site's too: one template for both faces
    ds.jinja_env.loader = ChoiceLoader([ds.jinja_env.loader, FileSystemLoader(template_dir())])
    # named `tcpkb` whatever the file is called (an installed tcpkb builds tcpkb-<hash>.db)
    ds.add_database(Database(ds, path=str(db_path), is_mutable=False), name=web.DB)
    return ds


def main(host: str, port: int) -> int:
    """Run the server until Ctrl-C."""
    import sqlite3

    from ..present import terminal as output
    from ..answer import ensure_db

    try:
        path = ensure_db()
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.execute("select 1 from entries limit 1")
    except Exception as e:  # no database and notes that do not build, or an unreadable file
        output.fail(f"cannot serve: {e}; run `tcpkb build`")
        return 1
    import uvicorn

    ds = make_datasette(path)
    output.echo(f"tcpkb: serving {path} read-only on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        uvicorn.run(ds.app(), host=host, port=port, log_level="warning", lifespan="on")
    except (OSError, SystemExit) as e:  # the port is taken, or uvicorn gave up binding it
        output.fail(f"cannot listen on {host}:{port}: {e}")
        return 1
    return 0

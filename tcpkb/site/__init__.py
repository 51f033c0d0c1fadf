"""The static docs site: `tcpkb site` writes a page per entry, kind and scenario (generate.py)."""

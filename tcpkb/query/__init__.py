"""Queries over the built database: lookups, search, explain, and the facts every face shows.

Standard library and sqlite3 only: `tcpkb errno 104` runs through here.
"""

"""Queries over the built database: lookups, search, explain, and the facts every face shows.

Standard library and sqlite3 only: `tcpkb errno 104` runs through here. explain's rules
(explain.py) read a lexicon (lexicon.py) rather than the database, so a piped `tcpkb explain`
runs them from the explain index without sqlite3 or re.
"""

"""records -> SQLite: the build (kb/ notes and the proof's records -> data/tcpkb.db).

The package itself imports nothing heavy: `tcpkb.build.database` holds the build and
loads sqlite-utils; `tcpkb.build.proof` turns verification records into rows;
`tcpkb.build.fragments` precomputes explain's matching data.
"""

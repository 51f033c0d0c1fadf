"""The web reference: a Datasette plugin (routes, entry pages, the lookup API) and `tcpkb serve`."""

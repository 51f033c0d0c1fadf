"""One module per area; one function per behaviour, named for what it shows."""

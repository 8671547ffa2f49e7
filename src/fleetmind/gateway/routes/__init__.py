"""The gateway's HTTP routes, one module per resource: ``chat`` (completions), ``models`` and ``health``."""

"""The built-in tools, one module per kind; each is registered under the ``fleetmind.tools`` entry-point group."""

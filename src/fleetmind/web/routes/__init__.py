"""Mission Control's routes, one module per resource: health, agent chat, status and the home page."""

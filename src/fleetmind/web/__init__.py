"""Mission Control (layer 5): the agent's HTTP surface — chat for front ends, status and a page for people.

The app is built by :func:`fleetmind.web.app.create_app` around a running
:class:`~fleetmind.agent.runtime.AgentRuntime`. Routes live in ``routes/`` (one module per resource), API key
auth and other dependencies in ``deps.py``, response models in ``schemas.py``, the error envelope in
``errors.py``.

Exceptions::

    WebError (Exception)
      +-- ApiError     an HTTP error, answered as {"error": {"message", "type", "param", "code"}}
"""

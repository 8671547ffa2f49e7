"""Mission Control (layer 5): the agent's HTTP surface — chat for front ends, and a page for people to watch
and steer the agent: live events (WebSocket), approvals, a tool console, the cluster view, saved state.

The app is built by :func:`fleetmind.mission_control.app.create_app` around a running
:class:`~fleetmind.agent.runtime.AgentRuntime`. Routes live in ``routes/`` (one module per resource), API key
auth and other dependencies in ``deps.py``, response models in ``schemas.py``, the error envelope in
``errors.py``, background tool runs in ``toolruns.py``, the cluster view in ``cluster.py``; the page is plain
HTML/JS/CSS in ``static/`` (no build step). The event hub itself is :mod:`fleetmind.events`.

Exceptions::

    WebError (Exception)
      +-- ApiError     an HTTP error, answered as {"error": {"message", "type", "param", "code"}}
"""

"""Mission Control (layer 5): a page for people to watch and steer the agent: live events (WebSocket), approvals, a
tool console, the cluster view, conversations, saved state.

Its routes are mounted by :func:`fleetmind.mission_control.app.mount` on the agent process's app, beside the
agent's own (:mod:`fleetmind.agent.server`), and read the agent through a small interface
(:class:`~fleetmind.mission_control.deps.AgentView`). Routes live in ``routes/`` (one module per resource),
dependencies in ``deps.py`` (keys are the HTTP kit's, :mod:`fleetmind.http.auth`), response models in
``schemas.py``, its error class and documented statuses in ``errors.py``, background tool runs in ``toolruns.py``,
the cluster view in ``cluster.py``; the page is plain HTML/JS/CSS in ``static/`` (no build step). The event hub
itself is :mod:`fleetmind.events`.

Exceptions::

    ServiceError (fleetmind.http.envelope)
      +-- ApiError     an HTTP error, answered as {"error": {"message", "type", "param", "code"}}
"""

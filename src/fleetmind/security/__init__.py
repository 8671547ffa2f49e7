"""API keys for every HTTP surface of the stack (gateway, Mission Control), with their scopes, and the service
credential the stack's own services prove themselves with (:mod:`fleetmind.security.service`).

Exceptions::

    UnknownKeyError (LookupError)   revoke of a key id that does not exist
"""

from fleetmind.security.keys import SCOPES, ApiKey, KeyStore, Scope, UnknownKeyError, hash_key, scope_allows

__all__ = ["SCOPES", "ApiKey", "KeyStore", "Scope", "UnknownKeyError", "hash_key", "scope_allows"]

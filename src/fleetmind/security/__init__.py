"""API keys for every HTTP surface of the stack (gateway, Mission Control).

Exceptions::

    UnknownKeyError (LookupError)   revoke of a key id that does not exist
"""

from fleetmind.security.keys import ApiKey, KeyStore, UnknownKeyError, hash_key

__all__ = ["ApiKey", "KeyStore", "UnknownKeyError", "hash_key"]

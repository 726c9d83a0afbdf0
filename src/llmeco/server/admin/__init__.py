"""Admin API: ``/admin/keys`` (create, list, show, re-limit, revoke), ``/admin/usage``,
``/admin/aliases``, and ``/v1/usage`` (a key's own usage)."""

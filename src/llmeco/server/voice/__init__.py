"""``POST /v1/apps/voice/{kb}``: the support assistant by voice."""

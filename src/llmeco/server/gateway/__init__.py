"""The gateway: models served by other OpenAI-compatible servers, governed here.

``serving.py`` checks, charges and relays requests; ``relay.py`` handles the upstream's SSE
bytes; ``metrics.py`` wires the upstream metrics into the server's registry.
"""

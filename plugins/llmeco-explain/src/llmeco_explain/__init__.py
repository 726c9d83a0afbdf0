"""llmeco-explain: explanations for classifications and generated answers (``/v1/apps/explain``).

See the package README for the API; :mod:`llmeco_explain.attribution` has the methods.
"""

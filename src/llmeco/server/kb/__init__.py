"""Knowledge bases over HTTP: ``/v1/kb`` (list, create, documents, search, delete)."""

"""Retrieval: chunking, embeddings, indexes and hybrid search."""

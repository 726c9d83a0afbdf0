"""Backup, verify and restore of a project home while the server runs.

A backup is a directory (``llmeco backup create OUT``)::

    OUT/
      manifest.json            every other file with size and SHA-256, the llmeco version,
                               the store kind and schema revisions, the ledger's head seq and
                               latest checkpoint at the snapshot, and what was left out
      store/llmeco.db          SQLite: a consistent copy (online backup API)
      store/llmeco.pgdump      PostgreSQL: ``pg_dump --format=custom`` of one snapshot
      home/artifacts/sha256/…  the registry's blobs, re-hashed while copied
      home/…                   any other file of the home (agent profiles, eval reports …)
      keys.sealed              only with ``--include-keys``: home/keys/*, sealed with a
                               passphrase (scrypt + AES-256-GCM)

It is written to a hidden directory next to ``OUT`` and renamed into place at the end, so a
backup that exists is complete. To ship one elsewhere, archive the directory (``tar``).

* :mod:`~llmeco.backup.manifest` — the manifest, hashing, and checking a backup against it;
* :mod:`~llmeco.backup.snapshot` — the store per dialect: snapshot and load;
* :mod:`~llmeco.backup.keys` — sealing and unsealing the key files;
* :mod:`~llmeco.backup.create` — taking a backup;
* :mod:`~llmeco.backup.restore` — restoring one into a new home.
"""

"""Create (once) and reuse a separate virtual environment for a peer server.

Peers are other OpenAI-compatible servers that llmeco's gateway is tested and
benchmarked against (llama.cpp's server via llama-cpp-python, LiteLLM's proxy). They
never go into llmeco's own venv or lock files: each gets its own venv under
``$LLMECO_PEERS_CACHE`` (default ``~/.cache/llmeco-peers/<name>``), built on first use
and reused afterwards, so tests and benchmarks share one build.

Usage::

    python scripts/peer_venv.py llama-cpp      # build if missing, print the python path
    python scripts/peer_venv.py litellm --check  # print the path only if already built

Importable too: ``peer_python("llama-cpp")`` returns the venv's python or raises.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

# name -> pip requirements, pinned (supply chain; the figures name the version measured); the
# stamp file records what was installed so a run can report it.
PEERS: dict[str, list[str]] = {
    "llama-cpp": ["llama-cpp-python[server]==0.3.36"],
    # Pinned: 1.107.0 was a compromised release (yanked), and from 1.108 the [proxy] extra
    # needs a `litellm-proxy` distribution the package index here does not have.
    "litellm": ["litellm[proxy]==1.106.12"],
    # HF's corpus filters (Gopher, C4, FineWeb), the reference our data filters agree with;
    # spaCy is its English word/sentence tokenizer (a blank pipeline, no model download).
    "datatrove": [
        "datatrove==0.10.1",
        "spacy==3.8.18",
        "regex==2026.11.24",
        "orjson==3.13.0",
    ],
    # LlamaIndex and LangChain over llmeco's model (benchmarks/support.py). They pin older
    # openai / huggingface_hub than llmeco's venv, so they live here; torch, transformers,
    # sentence-transformers and langchain-core/openai come from llmeco's venv underneath
    # (OVERLAY), installed with --no-deps at the versions pip resolved for them.
    "rag-frameworks": [
        "llama-index-core==0.14.25",
        "llama-index-llms-openai-like==0.8.1",
        "llama-index-llms-openai==0.8.3",
        "llama-index-embeddings-huggingface==0.8.0",
        "llama-index-workflows==2.26.1",
        "llama-index-instrumentation==0.6.0",
        "langchain-huggingface==1.2.3",
        "langchain-text-splitters==1.1.3",
        "openai==2.54.0",
        "huggingface_hub==1.33.0",
        "banks==2.5.1",
        "dirtyjson==1.0.8",
        "filetype==1.2.0",
        "nest-asyncio==1.6.0",
        "Deprecated==1.3.1",
        "tinytag==2.3.2",
        "typing-inspect==0.9.0",
        "aiosqlite==0.22.1",
        "dataclasses-json==0.6.7",
        "marshmallow==3.26.2",
        "griffe==2.4.1",
        "griffecli==2.4.1",
    ],
    # lm-evaluation-harness (its local-completions model against `llmeco serve`); it needs
    # python-dateutil<3 where llmeco's venv has 4, so it overlays llmeco's venv (torch,
    # transformers, aiohttp, requests, tenacity from there) with its own pure-Python deps.
    "lm-eval": [
        "lm-eval[api]==0.4.13",
        "chardet==6.0.0.post1",
        "dataproperty==1.1.1",
        "datasets==5.2.0",
        "dill==0.4.1",
        "evaluate==0.4.6",
        "mbstrdecoder==1.1.5",
        "multiprocess==0.70.19",
        "pathvalidate==3.3.1",
        "pytablewriter==1.2.1",
        "python-dateutil==2.9.0.post0",
        "pytz==2026.6",
        "sqlitedict==2.1.0",
        "tabledata==1.3.5",
        "tcolorpy==0.1.7",
        "typepy==1.3.5",
        "word2number==1.1",
    ],
}

#: Peers that see llmeco's own venv under theirs (a .pth line) and install --no-deps.
OVERLAY = {"rag-frameworks", "lm-eval"}

#: Extra environment for building a peer. llama.cpp's default build tunes its kernels to the
#: build machine's CPU (GGML_NATIVE); on the virtual CPUs here that build crashed with a
#: general protection fault in libggml-cpu on the first chat request, so it is built for a
#: portable baseline instead.
BUILD_ENV = {"llama-cpp": {"CMAKE_ARGS": "-DGGML_NATIVE=OFF"}}

STAMP = "llmeco-peer.ok"


def cache_root() -> Path:
    """Return the directory that holds every peer venv (``LLMECO_PEERS_CACHE`` wins)."""
    env = os.environ.get("LLMECO_PEERS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llmeco-peers"


def peer_dir(name: str) -> Path:
    """Return the venv directory of peer ``name`` (it may not exist yet)."""
    if name not in PEERS:
        raise KeyError(f"unknown peer {name!r}; known: {', '.join(sorted(PEERS))}")
    return cache_root() / name


def venv_python(path: Path) -> Path:
    """Return the python executable inside the venv at ``path``."""
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_built(name: str) -> bool:
    """Whether peer ``name``'s venv finished installing (the stamp is written last)."""
    return (peer_dir(name) / STAMP).exists()


def peer_python(name: str) -> Path:
    """Return the python of an already built peer venv, or raise FileNotFoundError.

    Tests call this to skip cleanly when a peer has not been built on this machine.
    """
    if not is_built(name):
        raise FileNotFoundError(
            f"peer {name!r} is not built; run: python scripts/peer_venv.py {name}"
        )
    return venv_python(peer_dir(name))


def _overlay(python: Path) -> None:
    """Point an overlay peer venv at this interpreter's site-packages (llmeco's venv)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(own) / "zz-llmeco-venv.pth").write_text(f"{site}\n")


def build(name: str, *, quiet: bool = False) -> Path:
    """Build peer ``name``'s venv if it is missing and return its python.

    A half-built venv (no stamp) is reused and pip is simply run again, so an
    interrupted build resumes instead of starting over.
    """
    path = peer_dir(name)
    python = venv_python(path)
    if is_built(name):
        if name in OVERLAY:
            _overlay(python)  # follow the llmeco venv that runs it now (a fresh clone's, say)
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(path)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, "--upgrade", "pip", "wheel", "setuptools"], check=True)
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    env.update(BUILD_ENV.get(name, {}))
    extra: list[str] = []
    if name in OVERLAY:
        _overlay(python)
        extra = ["--no-deps"]
    subprocess.run([*pip, "--no-cache-dir", *extra, *PEERS[name]], check=True, env=env)
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True
    ).stdout
    (path / STAMP).write_text(frozen)
    return python


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: build (or check) a peer venv and print its python path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(PEERS))
    parser.add_argument("--check", action="store_true", help="do not build; exit 1 if missing")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        if not is_built(args.name):
            print(f"not built: {peer_dir(args.name)}", file=sys.stderr)
            return 1
        print(peer_python(args.name))
        return 0
    print(build(args.name, quiet=args.quiet))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m llmeco …``: the ``llmeco`` command, for when the console script is not on PATH.

torchrun starts the workers of a multi-process training run this way
(``python -m llmeco train TASK …``, see :func:`llmeco.training.distributed.launch`).
"""

from llmeco.cli.main import app

if __name__ == "__main__":
    app(prog_name="llmeco")

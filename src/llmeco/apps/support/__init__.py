"""The support assistant: answers from a knowledge base, cites its passages, hands off when
the knowledge base does not hold the answer.

A turn goes (:mod:`~llmeco.apps.support.plan`): retrieve for the conversation → decide
whether the passages can answer it → either hand off (a fixed message, no model call) or ask
the model to answer from the numbered passages only. The retrieved passages are re-ordered so
that ``[1]`` is the one holding the sentence closest to the question.

*Answerability* is judged before generating, by an answerability gate
(:mod:`llmeco.apps.answerability`): a logistic regression over signals a small model cannot
fake, fitted on labelled questions — per knowledge base with ``llmeco kb calibrate``
(:mod:`~llmeco.apps.support.calibration`), or the shipped default, pooled over the calibration
sets of three knowledge bases with its threshold chosen leave-one-KB-out, so it holds on a
knowledge base nobody labelled. The signals (:mod:`~llmeco.apps.support.signals`):

* the best cosine similarity between the question and any single sentence of the top passages
  (sentence level, because chunk-level similarity is diluted by the rest of a chunk);
* for each of the question's content words, whether the top passages contain it literally (a
  shared 5-letter stem), else how close the closest passage word is (embedding cosine), so
  "bike" is covered by "bicycle" while "scooters" is not;
* the token recall of the best passage (:func:`token_recall`): each content word piece of the
  question matched to its closest piece of the passage in context, as BERTScore does.

*Grounding* happens after generating, sentence by sentence (:class:`Grounder`, in
:mod:`~llmeco.apps.support.grounding`): a sentence of the answer is kept when a passage
sentence says the same thing (cosine ≥ :data:`MIN_SUPPORT`) and that passage sentence is
itself about the question; it then cites that passage as ``[n]`` (markers the model wrote are
replaced by the one the evidence supports). Sentences no passage supports are dropped. Then
the *answer sentence* is quoted with its citation unless what was kept already says it: the
passage sentence most likely to hold what was asked, and a second one when the two score
too close to tell apart; when no generated sentence survives, they are the whole answer. So
every answer names the passage it comes from, and the streamed answer (a sentence at a time)
equals the plain one.

The modules: :mod:`~llmeco.apps.support.turn` (what a planned turn holds),
:mod:`~llmeco.apps.support.protocols` (the knowledge base and embedder it needs),
:mod:`~llmeco.apps.support.text` (sentences, content words, citation markers),
:mod:`~llmeco.apps.support.cache` (embeddings remembered between turns) and
:mod:`~llmeco.apps.support.desk` (what a server runs: knowledge bases, gates, the
conversation log). The desk, the cache and calibration are imported from their modules; this
package re-exports the assistant itself.
"""

from llmeco.apps.support.grounding import MIN_RELEVANCE, MIN_SUPPORT, Grounder, ground
from llmeco.apps.support.plan import COVERAGE_WEIGHT, PASSAGE_CHARS, PASSAGES, plan_turn
from llmeco.apps.support.protocols import Embeds, Searcher
from llmeco.apps.support.signals import token_recall, word_similarities
from llmeco.apps.support.text import (
    cited,
    content_words,
    focus,
    query_for,
    sentences_of,
    with_marker,
)
from llmeco.apps.support.turn import HANDOFF_MESSAGE, Citation, Evidence, SupportTurn

__all__ = [
    "COVERAGE_WEIGHT",
    "HANDOFF_MESSAGE",
    "MIN_RELEVANCE",
    "MIN_SUPPORT",
    "PASSAGES",
    "PASSAGE_CHARS",
    "Citation",
    "Embeds",
    "Evidence",
    "Grounder",
    "Searcher",
    "SupportTurn",
    "cited",
    "content_words",
    "focus",
    "ground",
    "plan_turn",
    "query_for",
    "sentences_of",
    "token_recall",
    "with_marker",
    "word_similarities",
]

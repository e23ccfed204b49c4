"""Generation: the records, the engines that regenerate perturbed inputs, and their cache.

* ``records.py``: ``GenerationSettings`` and ``Generation``.
* ``protocol.py``: the ``Regenerator`` protocol every engine satisfies, and the
  ``CompletionGenerator`` protocol the perturbation methods call.
* ``registry.py``: the engines by name (``draft``, ``plain``, ``llama.cpp``).
* ``truncation.py``: the rule that ends a completion at its function's end.
* ``cache.py``: the on-disk cache of generations; ``generator.py``: ``CachedGenerator``, the
  front that reads the cache and hands the rest to an engine.
* ``draft.py`` (with ``batches.py`` and ``prefix.py``): the exact draft-verify engine on a
  white-box model; ``llamacpp.py``: the llama.cpp engine.

Backends (``codefocus.models``) generate; this package decides how perturbed inputs are
regenerated. Only the light modules are imported here (no torch).
"""

from codefocus.generation.protocol import CompletionGenerator, Regenerator, as_completion_generator
from codefocus.generation.records import Generation, GenerationSettings

__all__ = [
    "CompletionGenerator",
    "Generation",
    "GenerationSettings",
    "Regenerator",
    "as_completion_generator",
]

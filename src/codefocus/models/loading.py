"""Model names users type (``default``, ``tiny``, a hub id, a directory, a ``.gguf`` file)."""

from __future__ import annotations

from codefocus.errors import InvalidArgumentError
from codefocus.models.base import TextGenerator
from codefocus.models.hf import HFModel


def load_model(
    spec: str = "default", device: str | None = None, dtype: str | None = None
) -> TextGenerator:
    """Load a model by name: white-box (``HFModel``) or, for a URL, an endpoint.

    Args:
        spec: ``default`` (the packaged Qwen2.5-Coder-0.5B-Instruct, converted once, then
            cached), ``tiny`` / ``tiny-gpt2`` (random-weight test models built in code), a hub
            id, a model directory, a ``.gguf`` file, or ``http(s)://host:port[/v1][#model]`` /
            ``openai:<model>`` for an OpenAI-compatible endpoint (perturbation methods, and the
            likelihood methods where the server echoes prompt log-probabilities).
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, or ``auto`` (``device_map="auto"``
            where CUDA is available, else the CPU); default: CUDA when available.
        dtype: ``float32`` (the default), ``bfloat16``, ``float16``, or ``auto`` (float32 on the
            CPU, half precision on a GPU): ``codefocus.models.placement``.

    Raises:
        ModelLoadError: the model cannot be found or loaded (``PackagedModelError`` for the
            packaged one).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgumentError(f"a model name is a non-empty string, got {spec!r}")
    if "auto" in (device, dtype) and not spec.startswith(("http://", "https://", "openai:")):
        from codefocus.models.placement import resolve_device, resolve_dtype

        device = resolve_device(device or "auto")
        dtype = resolve_dtype(dtype or "float32", device)
    if spec == "default":
        from codefocus.models.packaged import DEFAULT_MODEL_NAME, ensure_default_model, ensure_gguf

        model = HFModel.load(str(ensure_default_model()), device=device, dtype=dtype)
        model.name = DEFAULT_MODEL_NAME
        model.gguf_source = ensure_gguf
        return model
    if spec.startswith(("http://", "https://", "openai:")):
        from codefocus.models.endpoint import EndpointModel

        return EndpointModel.from_spec(spec)
    if spec in ("tiny", "tiny-qwen2", "tiny-gpt2"):
        from codefocus.models.tiny import build_tiny_model

        architecture = "gpt2" if spec == "tiny-gpt2" else "qwen2"
        model, tokenizer = build_tiny_model(architecture)
        if dtype:  # built in float32
            import torch

            model = model.to(getattr(torch, dtype))
        return HFModel(model, tokenizer, name=spec, device=device)
    return HFModel.load(spec, device=device, dtype=dtype)

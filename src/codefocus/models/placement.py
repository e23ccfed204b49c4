"""Where a white-box model runs and in what precision, and memory sizes.

``device``: ``auto`` (CUDA where available, placed by accelerate's ``device_map="auto"``: on one
GPU when the model fits, spread over the GPUs and the CPU when it does not; the CPU otherwise),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``. ``dtype``: ``auto`` (float32 off the GPU, where every
published figure was computed; on a GPU bfloat16 where it has it, float16 where not),
``float32``, ``bfloat16`` or ``float16``. Memory sizes read as accelerate reads them: ``4GB`` is
4 * 10^9 bytes, ``4GiB`` 4 * 2^30.
"""

from __future__ import annotations

import re

from codefocus.errors import InvalidArgumentError

DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
# memory sizes as accelerate reads them: GB = 10^9 bytes, GiB = 2^30
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]*)?)\s*([a-z]*)")


def check_device(device: str) -> str:
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise InvalidArgumentError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise InvalidArgumentError(f"unknown dtype {dtype!r}: use {', '.join(DTYPES)}")
    return dtype


def parse_memory(size: str | int | None) -> int | None:
    """A memory size in bytes: ``4GB`` (10^9 bytes each), ``512MiB`` (2^20), ``1.5gb``, or a
    number of bytes; ``None`` stays ``None`` (no bound)."""
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        number = size
    else:
        match = _MEMORY.fullmatch(size.strip().lower()) if isinstance(size, str) else None
        if match is None or match.group(2) not in _UNITS:
            raise InvalidArgumentError(
                f"cannot read {size!r} as a memory size: write e.g. 4GB, 512MB or 2GiB"
            )
        number = int(float(match.group(1)) * _UNITS[match.group(2)])
    if number <= 0:
        raise InvalidArgumentError(f"a memory size must be positive, got {size!r}")
    return number


def resolve_device(device: str) -> str:
    """``auto``: ``auto`` where CUDA is available (accelerate places the model: one GPU when it
    fits, spread over GPUs and CPU when it does not), else ``cpu``; any other device as given."""
    check_device(device)
    if device != "auto":
        return device
    import torch

    return "auto" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: float32 off the GPU; on one, bfloat16 where it has it, float16 where not."""
    check_dtype(dtype)
    if dtype != "auto":
        return dtype
    if device == "auto" or device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def placement_of(model) -> dict[str, str]:
    """Where a white-box model runs and in what precision (``{}`` for an endpoint)."""
    from codefocus.models.base import is_white_box

    if not is_white_box(model):
        return {}
    dtype = str(getattr(getattr(model, "model", None), "dtype", "unknown"))
    dtype = dtype.removeprefix("torch.")
    return {"device": str(model.device), "dtype": dtype}

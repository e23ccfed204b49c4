"""Shared fixtures and the test markers.

Markers (declared in pyproject.toml, enforced by ``--strict-markers``):

* ``browser``: drives headless Chromium through Playwright; added here to every test that uses
  the ``browser`` fixture, and written out on the few that start Playwright themselves.
* ``needs_data``: reads the shared data directory; added here to every test that uses the
  ``data_dir`` fixture. Every other test runs with ``$CODEFOCUS_DATA`` unset, so a test that
  reads the data without saying so fails instead of passing by luck.
* ``slow``: takes more than a few seconds (measured with ``pytest --durations=0``).
* ``integration``: loads the real packaged model or a llama.cpp build.

The fast unit target: ``pytest -m "not slow and not integration and not browser"`` (see
scripts/test.sh).
"""

import inspect
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_ARCHITECTURES = ("qwen2", "gpt2")


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "browser" in fixtures:
            item.add_marker(pytest.mark.browser)
        if "data_dir" in fixtures:
            item.add_marker(pytest.mark.needs_data)
        function = getattr(item, "function", None)
        if item.get_closest_marker("browser") is None and function is not None:
            if "sync_playwright" in inspect.getsource(function):
                raise pytest.UsageError(f"{item.nodeid} starts Playwright: mark it browser")


@pytest.fixture(autouse=True)
def _data_only_where_declared(request, monkeypatch):
    """A test not marked ``needs_data`` sees no data directory (the library's default is
    ``$CODEFOCUS_DATA``)."""
    if request.node.get_closest_marker("needs_data") is None:
        monkeypatch.delenv("CODEFOCUS_DATA", raising=False)


@pytest.fixture(scope="session", autouse=True)
def generation_cache(tmp_path_factory):
    """The library caches generations by default: in the tests, in a file of this session."""
    path = tmp_path_factory.mktemp("cache") / "generations.sqlite"
    os.environ["CODEFOCUS_GENERATION_CACHE"] = str(path)
    yield path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data directory: $CODEFOCUS_DATA, else ../shared/data beside the checkout."""
    path = Path(os.environ.get("CODEFOCUS_DATA") or REPO.parent / "shared" / "data")
    assert path.is_dir(), f"test data not found at {path}: set CODEFOCUS_DATA"
    return path


@pytest.fixture(scope="session")
def tiny_model_factory():
    """``make(architecture="qwen2", seed=0, layers=2, name=None)``: a tiny random-weight
    ``HFModel`` on the CPU, built once per session for each set of arguments and then shared, so
    a test must not change it (one that changes the weights builds its own with
    ``build_tiny_model``). ``name`` defaults to ``tiny-<architecture>``."""
    from codefocus.models.hf import HFModel
    from codefocus.models.tiny import build_tiny_model

    built: dict[tuple, HFModel] = {}

    def make(architecture: str = "qwen2", seed: int = 0, layers: int = 2, name: str | None = None):
        key = (architecture, seed, layers, name)
        if key not in built:
            net, tokenizer = build_tiny_model(architecture, seed=seed, layers=layers)
            built[key] = HFModel(net, tokenizer, name or f"tiny-{architecture}", device="cpu")
        return built[key]

    return make


@pytest.fixture(scope="session", params=TINY_ARCHITECTURES)
def tiny_model(request, tiny_model_factory):
    """The default tiny model (2 layers, seed 0) in each architecture, shared by the session."""
    return tiny_model_factory(request.param)


@pytest.fixture(scope="session")
def tiny_qwen2(tiny_model_factory):
    """The default tiny Qwen2 model, named ``tiny`` as ``load_model("tiny")`` names it."""
    return tiny_model_factory("qwen2", name="tiny")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (the explorer and user-study tests);
    per module, because a test that starts Playwright itself cannot while another runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()

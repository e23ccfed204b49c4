import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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

"""One page shell for every HTML file codefocus writes: ``templates/base.html``, which each
page's template extends (the attribution page, the study report, the memorization, AutoFocus
and probe reports, the user-study analysis).

The templates autoescape: a title, a heading or any other text passed in is escaped by jinja2.
The pages' fragments built in Python (tables, highlighted prompts, charts) escape every text
from a task, a model or a user with ``html.escape`` as they are built, and go into the page as
``Markup`` through ``escaped_fragment``; nothing else may be marked safe.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup


@cache
def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("codefocus.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a misspelt field fails the page, not silently blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def escaped_fragment(fragment: str) -> Markup:
    """HTML built by codefocus with every text in it escaped already, to go into a page as is."""
    from markupsafe import Markup

    return Markup(fragment)  # its callers escape every text they put in


def render_page(template: str, **context: Any) -> str:
    """The page ``template`` (which extends ``base.html``) rendered with ``context``."""
    from codefocus import __version__

    return _environment().get_template(template).render(version=__version__, **context)

"""The participants' web application: Starlette on uvicorn.

Why Starlette and not FastAPI: the application is a handful of HTML pages and two small JSON
endpoints; FastAPI's request models and OpenAPI schema would add pydantic and nothing a
questionnaire needs, while Starlette is the ASGI toolkit FastAPI itself is built on.

Pages: an intro with consent; per task (in the participant's own order) the prompt, the code with
its verdict and each method's highlights as "Highlight 1..n" with three 7-point scales; the open
questions; thanks. A participant is a random token in the URL: leaving and coming back resumes
at the first unanswered task. Each answer is stored the moment it is given (a click on a scale is
sent at once; the buttons send the page too). Templates autoescape every text; a strict
Content-Security-Policy allows only this server's own script and styles; nothing external loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from codefocus.reports.explorer import SCALE
from codefocus.reports.html import highlighted
from codefocus.userstudy.design import (
    LIKERT,
    DesignTask,
    ParticipantOrder,
    StudyDesign,
    participant_order,
)
from codefocus.userstudy.responses import ResponseStore

MAX_BODY = 64 * 1024  # a page of answers is a few kB
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def highlight_markup(task: DesignTask, method: str) -> Markup:
    """The prompt with a method's top-K words shaded by score (the report's rendering), with no
    title or class that could name the method."""
    marks = task.highlights[method]
    high = max(h.score for h in marks)
    low = min(h.score for h in marks)
    spans = []
    for h in marks:
        share = (h.score - low) / (high - low) if high > low else 1.0
        colour = SCALE[min(len(SCALE) - 1, int(share * len(SCALE)))]
        spans.append((h.start, h.end, colour, ""))
    return Markup(highlighted(task.prompt, spans))  # highlighted() escapes the prompt


class UserStudyApp:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.design = StudyDesign.load(self.directory)
        self.store = ResponseStore(self.directory)
        self.templates = Environment(
            loader=PackageLoader("codefocus.userstudy", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        static = Path(__file__).parent / "static"
        self.app = Starlette(
            routes=[
                Route("/", self.intro),
                Route("/start", self.start, methods=["POST"]),
                Route("/p/{token}", self.resume),
                Route("/p/{token}/task/{number:int}", self.task, methods=["GET", "POST"]),
                Route("/p/{token}/rate", self.rate, methods=["POST"]),
                Route("/p/{token}/final", self.final, methods=["GET", "POST"]),
                Route("/p/{token}/answer", self.answer, methods=["POST"]),
                Route("/p/{token}/done", self.done),
                Mount("/static", StaticFiles(directory=static), name="static"),
            ]
        )
        self.app.add_middleware(_SecurityHeaders)

    # ---- rendering ----------------------------------------------------------------------------
    def page(self, template: str, status: int = 200, **values) -> HTMLResponse:
        html = self.templates.get_template(template).render(title=self.design.title, **values)
        return HTMLResponse(html, status_code=status)

    def message(self, text: str, status: int = 200, **values) -> HTMLResponse:
        return self.page("message.html", status, message=text, **values)

    def _participant(self, request: Request) -> tuple[str, ParticipantOrder, bool] | None:
        token = request.path_params["token"]
        found = self.store.participant(token)
        if found is None:
            return None
        number, finished = found
        return token, participant_order(self.design, number), finished

    def _unknown(self) -> HTMLResponse:
        return self.message(
            "This address is not a participant of the study.", 404, link="/", link_text="Start"
        )

    @staticmethod
    async def _form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_BODY:
            return {}
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    @staticmethod
    async def _json(request: Request) -> dict | None:
        body = await request.body()
        if len(body) > MAX_BODY:
            return None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    # ---- pages --------------------------------------------------------------------------------
    def _intro(self, status: int = 200, error: str | None = None) -> HTMLResponse:
        n = len(self.design.tasks)
        return self.page(
            "intro.html",
            status,
            n_tasks=n,
            n_methods=len(self.design.methods),
            minutes=max(5, round(n * len(self.design.methods) * 1.5)),
            error=error,
        )

    async def intro(self, request: Request) -> Response:
        return self._intro()

    async def start(self, request: Request) -> Response:
        form = await self._form(request)
        if form.get("consent") != "yes":
            return self._intro(400, "Please tick the box to agree before you start.")
        token, _ = self.store.new_participant()
        return RedirectResponse(f"/p/{token}/task/1", status_code=303)

    async def resume(self, request: Request) -> Response:
        found = self._participant(request)
        if found is None:
            return self._unknown()
        token, order, finished = found
        if finished:
            return RedirectResponse(f"/p/{token}/done", status_code=303)
        given = self.store.ratings_of(token)
        questions = list(self.design.rating_questions)
        for number, key in enumerate(order.tasks, start=1):
            if any((key, m, q) not in given for m in order.methods[key] for q in questions):
                return RedirectResponse(f"/p/{token}/task/{number}", status_code=303)
        return RedirectResponse(f"/p/{token}/final", status_code=303)

    async def task(self, request: Request) -> Response:
        found = self._participant(request)
        if found is None:
            return self._unknown()
        token, order, finished = found
        number = request.path_params["number"]
        if not 1 <= number <= len(order.tasks):
            return self.message(
                "There is no such task.", 404, link=f"/p/{token}", link_text="Continue"
            )
        key = order.tasks[number - 1]
        methods = order.methods[key]
        if request.method == "POST":
            form = await self._form(request)
            for position, method in enumerate(methods, start=1):
                for question in self.design.rating_questions:
                    value = form.get(f"r-{position}-{question}", "")
                    if value.isdigit() and 1 <= int(value) <= 7:
                        self.store.rate(token, key, method, position, question, int(value))
            if form.get("nav") == "back":
                target = f"/p/{token}/task/{number - 1}" if number > 1 else f"/p/{token}/task/1"
            elif number < len(order.tasks):
                target = f"/p/{token}/task/{number + 1}"
            else:
                target = f"/p/{token}/final"
            return RedirectResponse(target, status_code=303)
        task = self.design.task(key)
        given = self.store.ratings_of(token)
        items = [
            {
                "position": position,
                "markup": highlight_markup(task, method),
                "given": {
                    q: given[(key, method, q)]
                    for q in self.design.rating_questions
                    if (key, method, q) in given
                },
            }
            for position, method in enumerate(methods, start=1)
        ]
        return self.page(
            "task.html",
            number=number,
            total=len(order.tasks),
            resume=f"{request.base_url}p/{token}",
            prompt=task.prompt,
            code=task.code,
            verdict=task.verdict,
            items=items,
            k=self.design.k,
            questions=self.design.rating_questions,
            likert=LIKERT,
        )

    async def rate(self, request: Request) -> Response:
        found = self._participant(request)
        if found is None:
            return Response(status_code=404)
        token, order, _ = found
        data = await self._json(request)
        try:
            assert data is not None
            number, position = int(data["task"]), int(data["position"])
            question, value = str(data["question"]), int(data["value"])
            key = order.tasks[number - 1]
            method = order.methods[key][position - 1]
            valid = number >= 1 and position >= 1 and question in self.design.rating_questions
            valid = valid and 1 <= value <= 7
        except (AssertionError, KeyError, TypeError, ValueError, IndexError):
            valid = False
        if not valid:
            return Response("bad rating", status_code=400)
        self.store.rate(token, key, method, position, question, value)
        return Response(status_code=204)

    async def final(self, request: Request) -> Response:
        found = self._participant(request)
        if found is None:
            return self._unknown()
        token, order, _ = found
        if request.method == "POST":
            form = await self._form(request)
            for question in self.design.open_questions:
                if question in form:
                    self.store.answer(token, question, form[question][:10_000])
            if form.get("nav") == "back":
                return RedirectResponse(f"/p/{token}/task/{len(order.tasks)}", status_code=303)
            self.store.finish(token)
            return RedirectResponse(f"/p/{token}/done", status_code=303)
        return self.page(
            "final.html",
            resume=f"{request.base_url}p/{token}",
            questions=self.design.open_questions,
            answers=self.store.answers_of(token),
        )

    async def answer(self, request: Request) -> Response:
        found = self._participant(request)
        if found is None:
            return Response(status_code=404)
        data = await self._json(request)
        if (
            data is None
            or data.get("question") not in self.design.open_questions
            or not isinstance(data.get("text"), str)
        ):
            return Response("bad answer", status_code=400)
        self.store.answer(found[0], data["question"], data["text"][:10_000])
        return Response(status_code=204)

    async def done(self, request: Request) -> Response:
        if self._participant(request) is None:
            return self._unknown()
        return self.message("Thank you: your answers are saved. You can close this page.")


class _SecurityHeaders:
    """Adds the CSP and friends to every response (pure ASGI middleware)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(directory: str | Path) -> Starlette:
    return UserStudyApp(directory).app


def serve(directory: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the study until interrupted (uvicorn)."""
    import uvicorn

    app = create_app(directory)
    uvicorn.run(app, host=host, port=port, log_level="warning")

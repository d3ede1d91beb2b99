"""Browser tests: a real uvicorn server on 127.0.0.1 (in a thread of this process, so that the test's
ManualClock drives it) on a fresh SQLite database, and Debian's Chromium driven by Playwright.

Playwright cannot download its own browsers here: the tests use /usr/bin/chromium (`apt-get install
chromium`). Without it they skip on a laptop and fail under CI=true, like the database services.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, sync_playwright
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker
from huimin.kit.clock import ManualClock
from huimin.migrate import upgrade
from tests.conftest import IN_CI, ROOT

CHROMIUM = Path(os.environ.get("HUIMIN_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "test-output" / "e2e"
T = TypeVar("T")


def _in_thread(work: Callable[[], T]) -> T:
    # Playwright's sync API keeps an event loop running in the test's thread: asyncio.run (the
    # services, the migrations) needs a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return CHROMIUM


@dataclass
class LiveServer:
    url: str
    settings: Settings
    clock: ManualClock

    def run(self, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
        """Prepare data through the services, from the test's thread, on the server's database."""

        async def go() -> T:
            engine = create_engine(self.settings.database_url)
            try:
                return await work(create_sessionmaker(engine))
            finally:
                await engine.dispose()

        return _in_thread(lambda: asyncio.run(go()))


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'huimin.db'}"
    _in_thread(lambda: upgrade(url))
    settings = Settings(database_url=url)
    clock = ManualClock(datetime(2022, 6, 24, 3, 0, tzinfo=UTC))  # 11:00 Beijing time, a round is open
    app = create_app(settings, clock=clock)
    # Our own listening socket: the browser's first connection waits in its backlog until uvicorn has
    # started, so no polling and no sleep is needed.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", settings, clock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


# Module scope, not session: while Playwright's sync API is started it keeps an event loop running in
# this thread, which would break every asyncio test that pytest runs after the browser tests.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium: Path) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
    yield launched
    launched.close()


@dataclass
class Watched:
    """A page whose console errors and requests are recorded, to be checked at the end of the test."""

    page: Page
    server: LiveServer
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def offsite(self) -> list[str]:
        return [
            url
            for url in self.requests
            if not url.startswith((f"{self.server.url}/", "data:", "blob:", "about:"))
        ]


@pytest.fixture
def watched(browser: Browser, live_server: LiveServer) -> Iterator[Watched]:
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    record = Watched(page, live_server)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            record.errors.append(message.text)

    def on_failed(request: Request) -> None:
        if request.failure != "net::ERR_ABORTED":  # a request cut short by the test moving on
            record.failed.append(f"{request.url}: {request.failure}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: record.errors.append(str(error)))
    page.on("request", lambda request: record.requests.append(request.url))
    page.on("requestfailed", on_failed)
    page.on("dialog", lambda dialog: dialog.accept())  # the console's confirmations
    yield record
    context.close()


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # Playwright's sync API runs its own event loop: these tests are plain functions, not asyncio ones.
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)

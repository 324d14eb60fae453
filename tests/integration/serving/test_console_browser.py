"""The live console in a real headless Chromium, against a worker on the embedded Tansu.

One worker with the real model and two A/B arms; real shop events flow at 100/s with a few
hostile ones and some clicks on served recommendations. The page (``/console``, served by
the worker itself, no external assets) must show live rates, the per-arm table, the latest
recommendations with catalog titles and reasons, and the dead letters with their reasons
but without their payloads (no token given). Chromium and chromedriver are the Debian
packages (``make browser``); Selenium drives them, nothing is downloaded.

``STREAM_REC_CONSOLE_SCREENSHOT=docs/console.png`` also saves the screenshot there
(``make console-screenshot``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import DEMO, WARMUP, Pipeline, open_pipeline, wait_for
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from stream_rec.broker.publisher import event_records, publish
from stream_rec.core import codec
from stream_rec.core.events import Event
from stream_rec.local.brokers import RunningBroker
from stream_rec.local.hostile import bad_events

pytestmark = [pytest.mark.integration, pytest.mark.model]

RATE = 100.0
STREAM = DEMO.events[300:1800]
HOSTILE = 6
READ_PAGE = """
const cells = (sel) => [...document.querySelectorAll(sel)].map(
    (tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()));
return {
  lag: document.getElementById("lag").textContent,
  arms: cells("#arms tbody tr"),
  dlq: cells("#dlq tbody tr"),
  latest: [...document.querySelectorAll("#latest .rec li")].map((li) => [
      li.firstChild.textContent.trim(), li.querySelector(".reason").textContent.trim()]),
};
"""


@pytest.fixture
def console_pipeline(tansu_broker: RunningBroker, tmp_path: Path) -> Iterator[Pipeline]:
    yield from open_pipeline(tansu_broker, tmp_path, "c", arms="slm:0.5,holdout:0.5")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("the console test needs Debian's chromium and chromium-driver: "
                    "run `make browser` (make test does)")
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1440,1250", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def number(driver: WebDriver, element_id: str) -> float | None:
    text = driver.find_element(By.ID, element_id).text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def clicks_on(recs: list[dict[str, object]]) -> list[tuple[bytes | None, bytes]]:
    out = []
    for n, rec in enumerate(recs):
        items = rec["items"]
        assert isinstance(items, list) and items
        event = Event(f"click-{rec['rec_id']}-{n}", "rec_click", str(rec["user_id"]),
                      int(str(rec["trigger_ts_ms"])) + 1000, item_id=items[0]["item_id"],
                      rec_id=str(rec["rec_id"]))
        out.append((event.user_id.encode(), codec.dumps(event.to_dict())))
    return out


def test_console_shows_live_numbers_recommendations_and_dead_letters(
        console_pipeline: Pipeline, browser: WebDriver, tmp_path: Path) -> None:
    pipe = console_pipeline
    worker = pipe.start_worker()
    pipe.publish(list(event_records(WARMUP)))
    hostile = [(bad.key, bad.value) for bad in
               bad_events(HOSTILE, ts_ms=STREAM[0].ts_ms)]
    feed = [*event_records(STREAM[:200]), *hostile, *event_records(STREAM[200:])]
    feeder = threading.Thread(target=lambda: asyncio.run(publish(
        pipe.bootstrap, pipe.settings.topics.events, feed, rate=RATE, one_record_batches=True)))
    feeder.start()
    try:
        served = pipe.read(pipe.settings.topics.recs, until=len(WARMUP) + 100)
        pipe.publish(clicks_on(served[-40::4]))
        browser.get(worker.url + "/console")
        wait = WebDriverWait(browser, 90, poll_frequency=0.5,
                             ignored_exceptions=(WebDriverException,))
        wait.until(lambda d: (number(d, "recs-rate") or 0) > 0
                   and (number(d, "events-rate") or 0) > 0)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#latest .rec li"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#dlq tbody tr")) >= HOSTILE)
        wait.until(lambda d: "[" in d.find_element(By.ID, "arms").text)  # a CTR interval

        page = browser.execute_script(READ_PAGE)  # in one go: the page redraws every second
        assert page["lag"].replace(",", "").isdigit()
        arms = {cells[0]: cells for cells in page["arms"]}
        assert set(arms) == {"slm", "holdout"}
        for cells in arms.values():
            recs_per_s, p50, p99 = (float(cells[i].replace(",", "")) for i in (1, 3, 4))
            assert recs_per_s >= 0 and 0 < p50 <= p99
            assert cells[5].endswith("MB") and cells[6] != "\u2013"  # RSS, CPU ms/rec (not a dash)
        titles = {item.title for item in DEMO.catalog}
        assert page["latest"] and all(title in titles for title, _ in page["latest"])
        assert all(reason.startswith("—") and len(reason) > 3 for _, reason in page["latest"])
        assert len(page["dlq"]) >= HOSTILE and all(reason for _, reason, _ in page["dlq"])
        assert not any("payload" in reason for _, reason, _ in page["dlq"])  # no token given
        time.sleep(3.0)  # let the rates settle for the picture
        shot = tmp_path / "console.png"
        assert browser.save_screenshot(str(shot))
        target = os.environ.get("STREAM_REC_CONSOLE_SCREENSHOT")
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, target)
    finally:
        feeder.join(60)
    # with the token, the same data carries the payloads
    data = codec.loads(worker.get("/api/console")[1])
    assert data["dlq"] and all("payload" in record for record in data["dlq"])
    wait_for(lambda: codec.loads(worker.get("/api/console", token=False)[1])["totals"]["dlq"]
             >= HOSTILE, "the dead letters to be counted")

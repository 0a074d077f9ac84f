"""The web page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's
Python package, against the app under uvicorn on a loopback port. Write a prompt, watch the continuation
stream in, check a text, see coloured tokens, the histogram, the detector score and a tooltip.

Skips when Chromium or Playwright is absent (`apt-get install -y chromium`, `pip install playwright`;
never `playwright install`: it downloads a browser)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from conftest import serve_in_thread
from gpt2.config import GPTConfig
from gpt2.model import GPT
from gpt2.sampling import generate
from gpt2.server import create_app

CHROMIUM = Path(os.environ.get("GPT2_CHROMIUM", "/usr/bin/chromium"))
# No sandbox (root in CI); no background connections, which this closed network would refuse.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. ",
    "A small model learns the shape of the sentences it reads. ",
    "Scientists found a herd of unicorns living in a remote valley in the Andes. ",
    "The unicorns spoke perfect English, which surprised the scientists. ",
    "Every morning the fox runs to the river and the dog sleeps in the sun. ",
]
PROMPT = "The quick brown"
CHECK = "Scientists found a herd of unicorns. My grandmother's zebra plays jazz <b>loudly</b> & rarely."

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (pip install playwright)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)"),
]


class PacedGPT(GPT):
    """A GPT that takes 30 ms per forward, so the browser sees the text arrive in pieces."""

    def forward(self, *args, **kwargs):
        time.sleep(0.03)
        return super().forward(*args, **kwargs)


class FakeDetector:
    name = "test detector"

    def score(self, texts):
        return [0.73 for _ in texts]


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    return Tokenizer.train(CORPUS * 20, vocab_size=400)


@pytest.fixture(scope="module")
def model(tokenizer):
    """A nano GPT trained for a few seconds on CORPUS: it continues those sentences, so the page shows
    readable text and GLTR colours that mean something (green where it learned, red elsewhere)."""
    torch.manual_seed(0)
    model = PacedGPT(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size))
    ids = torch.tensor(tokenizer.encode("".join(CORPUS) * 30))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread (and ~10 s on a busy CPU)
    try:
        for _ in range(120):
            starts = torch.randint(0, len(ids) - 49, (8,)).tolist()
            batch = torch.stack([ids[s : s + 49] for s in starts])
            _, loss = GPT.forward(model, batch[:, :-1], batch[:, 1:])  # unpaced
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def server_url(model, tokenizer):
    app = create_app(model, tokenizer, model_name="nano-demo", detector=FakeDetector())
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_write_then_check_in_the_browser(browser, server_url, model, tokenizer, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server_url)
    sync_api.expect(page.locator("#model-name")).to_have_text("nano-demo")

    # Write: the continuation streams in and equals generate() with the page's options and seed
    page.fill("#prompt", PROMPT)
    page.fill("#max-tokens", "40")
    page.fill("#temperature", "0.8")
    page.fill("#seed", "7")
    page.click("#generate")
    page.wait_for_function("document.getElementById('output-text').textContent.length > 0")
    partial = page.text_content("#output-text")
    assert page.is_visible("#caret") and page.is_enabled("#stop")  # still streaming after the first text
    sync_api.expect(page.locator("#write-status")).to_contain_text("seed 7", timeout=30_000)
    text = page.text_content("#output-text")
    (sample,) = generate(model, tokenizer.encode(PROMPT), max_new_tokens=40, temperature=0.8, top_k=40,
                         seed=7, tokenizer=tokenizer)
    assert text == sample.text and len(partial) < len(text) and text.startswith(partial)
    assert page.text_content("#output-prompt") == PROMPT
    page.screenshot(path=str(tmp_path / "write.png"))

    # Check: coloured tokens, histogram, detector score, tooltip
    page.click("#tab-check")
    assert page.is_hidden("#panel-write") and page.is_visible("#panel-check")
    page.fill("#check-text", CHECK)
    page.click("#check")
    tokens = page.locator("#tokens .tok")
    sync_api.expect(tokens).to_have_count(len(tokenizer.encode(CHECK)))
    assert page.text_content("#tokens") == CHECK  # escaped: the <b> is text, not markup
    assert page.locator("#tokens b").count() == 0
    colours = set(tokens.evaluate_all("spans => spans.map(s => getComputedStyle(s).backgroundColor)"))
    gltr = {"rgb(173, 255, 128)", "rgb(255, 234, 128)", "rgb(255, 146, 128)", "rgb(229, 176, 255)"}
    assert colours <= gltr and len(colours) >= 2  # learned words green, surprises further down
    assert page.locator("#histogram .hrow").count() == 4
    widths = page.locator("#histogram .hbar").evaluate_all("bars => bars.map(b => parseFloat(b.style.width))")
    assert sum(widths) == pytest.approx(100, abs=0.5)
    sync_api.expect(page.locator("#score .fake")).to_have_text("Fake 73.0%")
    sync_api.expect(page.locator("#score .real")).to_have_text("Real 27.0%")
    tokens.nth(3).hover()
    tooltip = page.locator("#tooltip")
    sync_api.expect(tooltip).to_be_visible()
    sync_api.expect(tooltip).to_contain_text("rank")
    sync_api.expect(tooltip).to_contain_text("The model expected")
    shot = tmp_path / "check.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshots: {tmp_path / 'write.png'} {shot}")
    assert errors == []
    page.close()


class UnicornDetector:
    """P(machine) = a quarter per "unicorn" in the text; counts its calls."""

    name = "unicorn counter"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def score(self, texts):
        self.calls.extend(texts)
        return [min(1.0, 0.25 * t.count("unicorn")) for t in texts]


def test_the_probability_follows_the_text_as_it_is_typed(browser, model, tokenizer):
    """OpenAI's detector demo: no button; the real/fake probability updates once typing pauses (debounced,
    one check per pause, not one per keystroke)."""
    detector = UnicornDetector()
    with serve_in_thread(create_app(model, tokenizer, model_name="nano-demo", detector=detector)) as url:
        page = browser.new_page()
        page.goto(url)
        page.click("#tab-check")
        page.locator("#check-text").press_sequentially("Scientists found a unicorn", delay=20)
        sync_api.expect(page.locator("#score .fake")).to_have_text("Fake 25.0%", timeout=15_000)
        sync_api.expect(page.locator("#tokens .tok")).to_have_count(len(tokenizer.encode("Scientists found a unicorn")))
        page.locator("#check-text").press_sequentially(" and a second unicorn.", delay=20)
        sync_api.expect(page.locator("#score .fake")).to_have_text("Fake 50.0%", timeout=15_000)
        sync_api.expect(page.locator("#score .real")).to_have_text("Real 50.0%")
        assert detector.calls[-1] == "Scientists found a unicorn and a second unicorn."
        assert len(detector.calls) <= 4  # 48 keystrokes, two pauses: debounced
        page.fill("#check-text", "")
        page.wait_for_timeout(900)
        assert page.is_hidden("#error")  # emptying the box while typing is not an error
        page.close()


def test_stop_button_and_errors_in_the_browser(browser, server_url):
    page = browser.new_page()
    page.goto(server_url)
    page.fill("#prompt", "<img src=x onerror=alert(1)>")
    page.fill("#max-tokens", "100")
    page.click("#generate")
    page.wait_for_function("document.getElementById('output-text').textContent.length > 0")
    page.click("#stop")
    sync_api.expect(page.locator("#write-status")).to_contain_text("stopped")
    assert page.locator("#output img").count() == 0
    page.fill("#max-tokens", "5000")  # beyond the server's limit: its message is shown
    page.click("#generate")
    sync_api.expect(page.locator("#error")).to_contain_text("at most 512")
    page.click("#tab-check")
    page.click("#check")
    sync_api.expect(page.locator("#error")).to_contain_text("Paste a text")
    page.close()

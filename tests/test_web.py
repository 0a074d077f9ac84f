"""The web page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's
Python package, against the app under uvicorn on a loopback port, at 1280x900 and on a 390x844 touch
phone. Write a prompt, watch the continuation stream in, check a text, see coloured tokens, the histogram,
the detector score and the token details; and what goes wrong for people (issue #27): failures leave no
stale result, long texts are scored in windows, options are checked before sending, tokens open on tap
and keyboard focus, the detector says what it knows, the tabs follow the arrow keys.

GPT2_WEB_SCREENSHOTS=docs/web writes the page's screenshots there (both views, both sizes).

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


# What the page is told about the detector (serve.py reads it from the detector's files): trained on, and
# accuracy by length as `gpt2 detect eval` measures it.
ABOUT = {"trained_on": "the page's test texts", "accuracy": 0.8, "accuracy_on": "test.jsonl", "accuracy_texts": 200,
         "by_length": [{"bucket": "0-64", "n": 100, "accuracy": 0.61}, {"bucket": "64-128", "n": 100, "accuracy": 0.85}]}
MAX_CHECK = 600  # tokens the test server checks at once
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 1}
INK = "rgb(35, 38, 43)"


@pytest.fixture(scope="module")
def server_url(model, tokenizer):
    app = create_app(model, tokenizer, model_name="nano-demo", detector=FakeDetector(), detector_about=ABOUT,
                     max_check_tokens=MAX_CHECK)
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, server_url):
    """open_page(phone=False, url=None): a page on the server, at 1280x900 or as a touch phone. A script
    error or a 404 (a missing favicon, say) fails the test."""
    contexts, problems = [], []

    def make(phone: bool = False, url: str | None = None):
        context = browser.new_context(**(PHONE if phone else DESKTOP))
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status == 404 else None)
        page.goto(url or server_url)
        expect(page.locator("#model-name")).to_have_text("nano-demo")
        return page

    yield make
    for context in contexts:
        context.close()
    assert problems == []


expect = sync_api.expect


def check(page, text: str, count: int) -> None:
    if page.is_hidden("#panel-check"):
        page.click("#tab-check")
    page.fill("#check-text", text)
    page.click("#check")
    expect(page.locator("#tokens .tok")).to_have_count(count, timeout=15_000)
    expect(page.locator("#result")).not_to_have_class("result stale")


def test_write_then_check_in_the_browser(open_page, model, tokenizer):
    page = open_page()
    # Write: the continuation streams in and equals generate() with the page's options and seed
    page.fill("#prompt", PROMPT)
    page.fill("#max-tokens", "40")
    page.fill("#temperature", "0.8")
    page.fill("#seed", "7")
    page.click("#generate")
    page.wait_for_function("document.getElementById('output-text').textContent.length > 0")
    partial = page.text_content("#output-text")
    assert page.is_visible("#caret") and page.is_enabled("#stop")  # still streaming after the first text
    expect(page.locator("#write-status")).to_contain_text("seed 7", timeout=30_000)
    text = page.text_content("#output-text")
    (sample,) = generate(model, tokenizer.encode(PROMPT), max_new_tokens=40, temperature=0.8, top_k=40,
                         seed=7, tokenizer=tokenizer)
    assert text == sample.text and len(partial) < len(text) and text.startswith(partial)
    assert page.text_content("#output-prompt") == PROMPT

    # Check: coloured tokens, histogram, detector score, details on hover
    page.click("#to-check")
    expect(page.locator("#tokens .tok")).to_have_count(len(tokenizer.encode(PROMPT + text)))
    check(page, CHECK, len(tokenizer.encode(CHECK)))
    assert page.text_content("#tokens") == CHECK  # escaped: the <b> is text, not markup
    assert page.locator("#tokens b").count() == 0
    tokens = page.locator("#tokens .tok")
    colours = set(tokens.evaluate_all("spans => spans.map(s => getComputedStyle(s).backgroundColor)"))
    gltr = {"rgb(173, 255, 128)", "rgb(255, 234, 128)", "rgb(255, 146, 128)", "rgb(229, 176, 255)"}
    assert colours <= gltr and len(colours) >= 2  # learned words green, surprises further down
    assert page.locator("#histogram .hrow").count() == 4
    widths = page.locator("#histogram .hbar").evaluate_all("bars => bars.map(b => parseFloat(b.style.width))")
    assert sum(widths) == pytest.approx(100, abs=0.5)
    expect(page.locator("#score .fake")).to_have_text("Model-written 73.0%")
    expect(page.locator("#score .real")).to_have_text("Human-written 27.0%")
    expect(page.locator("#window-note")).to_contain_text("whole text at once")
    tokens.nth(3).hover()
    expect(page.locator("#tooltip")).to_be_visible()
    expect(page.locator("#tooltip")).to_contain_text("rank")
    expect(page.locator("#tooltip")).to_contain_text("The model expected")


class UnicornDetector:
    """P(machine) = a quarter per "unicorn" in the text; counts its calls."""

    name = "unicorn counter"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def score(self, texts):
        self.calls.extend(texts)
        return [min(1.0, 0.25 * t.count("unicorn")) for t in texts]


def test_the_probability_follows_the_text_as_it_is_typed(open_page, model, tokenizer):
    """OpenAI's detector demo: no button; the probability updates once typing pauses (debounced, one check
    per pause, not one per keystroke). A detector nothing was said about claims no accuracy."""
    detector = UnicornDetector()
    app = create_app(model, tokenizer, model_name="nano-demo", detector=detector, detector_min_tokens=1)
    with serve_in_thread(app) as url:
        page = open_page(url=url)
        page.click("#tab-check")
        page.locator("#check-text").press_sequentially("Scientists found a unicorn", delay=20)
        expect(page.locator("#score .fake")).to_have_text("Model-written 25.0%", timeout=15_000)
        expect(page.locator("#tokens .tok")).to_have_count(len(tokenizer.encode("Scientists found a unicorn")))
        expect(page.locator("#check-count")).to_have_text(f"{len(tokenizer.encode('Scientists found a unicorn'))} tokens")
        page.locator("#check-text").press_sequentially(" and a second unicorn.", delay=20)
        assert "stale" in page.get_attribute("#result", "class")  # greyed while it is for an older text
        expect(page.locator("#score .fake")).to_have_text("Model-written 50.0%", timeout=15_000)
        expect(page.locator("#score .real")).to_have_text("Human-written 50.0%")
        expect(page.locator("#score")).to_contain_text("Measured accuracy: not measured")
        expect(page.locator("#score")).to_contain_text("unicorn counter")
        assert detector.calls[-1] == "Scientists found a unicorn and a second unicorn."
        assert len(detector.calls) <= 4  # 48 keystrokes, two pauses: debounced
        page.fill("#check-text", "")
        page.wait_for_timeout(900)
        assert page.is_hidden("#error") and page.is_hidden("#result")  # emptying the box is not an error


def test_a_failure_leaves_no_stale_result(open_page, tokenizer):
    """#27.1: a failed check hides the previous colours and score; a failed generation hides its box (no
    echo of a huge prompt), and an earlier text is greyed once the options no longer produce it."""
    page = open_page()
    check(page, CHECK, len(tokenizer.encode(CHECK)))
    expect(page.locator("#score .fake")).to_have_text("Model-written 73.0%")
    page.fill("#check-text", "Scientists found a unicorn. " * 80)  # more than the server checks at once
    page.click("#check")
    expect(page.locator("#error")).to_contain_text(f"checks at most {MAX_CHECK} tokens")
    assert page.is_hidden("#result") and page.locator("#tokens .tok").count() == 0
    assert page.text_content("#score") == ""
    expect(page.locator("#check-text")).to_have_attribute("aria-invalid", "true")

    page.click("#tab-write")
    page.fill("#prompt", PROMPT)
    page.fill("#max-tokens", "5")
    page.click("#generate")
    expect(page.locator("#write-status")).to_contain_text("seed", timeout=30_000)
    page.fill("#prompt", "The quick brown fox jumps. " * 800)  # 21,600 characters: beyond the context
    page.click("#generate")
    expect(page.locator("#prompt")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#prompt-fit")).to_be_visible()
    expect(page.locator("#output")).to_have_class("output stale")  # the old text no longer answers the form
    failure = {"error": {"message": "generation failed: RuntimeError: out of memory", "type": "server_error",
                         "param": None, "code": None}}
    page.route("**/v1/completions", lambda route: route.fulfill(status=500, json=failure))
    page.fill("#prompt", PROMPT)
    page.click("#generate")
    expect(page.locator("#error")).to_contain_text("Generation failed: RuntimeError: out of memory")
    assert page.is_hidden("#output") and page.is_hidden("#output-actions")


def test_any_length_is_scored_with_the_window_shown(open_page, tokenizer):
    """#27.2: a text longer than the context (128 tokens) is scored in rolling windows, said on the page;
    the detector's score is the mean over its windows."""
    page = open_page()
    page.click("#tab-check")
    page.locator("#example-list button").first.click()  # Python's documentation: ~530 tokens here
    text = page.input_value("#check-text")
    n = len(tokenizer.encode(text))
    assert n > 128
    expect(page.locator("#tokens .tok")).to_have_count(n, timeout=20_000)
    assert page.text_content("#tokens") == text
    expect(page.locator("#window-note")).to_contain_text("overlapping windows of 128 tokens, each 64 further on")
    expect(page.locator("#score")).to_contain_text(f"the mean over {-(-n // 128)} windows")
    expect(page.locator("#check-count")).to_have_text(f"{n} tokens")


def test_a_live_token_count_and_keeping_the_end_of_a_long_prompt(open_page, tokenizer):
    """#27.2: the prompt's tokens counted as you type; "Use as prompt" past the context offers to keep the
    last tokens that fit; a server error names the page's field in the page's words."""
    page = open_page()
    page.locator("#prompt").press_sequentially(PROMPT, delay=10)
    expect(page.locator("#prompt-count")).to_have_text(f"{len(tokenizer.encode(PROMPT))} tokens")
    page.fill("#max-tokens", "100")
    page.fill("#seed", "3")
    page.click("#generate")
    expect(page.locator("#write-status")).to_contain_text("seed 3", timeout=30_000)
    whole = PROMPT + page.text_content("#output-text")
    page.click("#continue")
    expect(page.locator("#prompt-fit")).to_contain_text("this model reads at most 128 tokens in all")
    expect(page.locator("#keep-last")).to_have_text("Keep the last 28 tokens")
    page.click("#keep-last")
    expect(page.locator("#prompt-fit")).to_be_hidden()
    kept = page.input_value("#prompt")
    assert whole.endswith(kept) and 0 < len(tokenizer.encode(kept)) <= 28
    expect(page.locator("#prompt-count")).to_have_text(f"{len(tokenizer.encode(kept))} tokens")

    refusal = {"error": {"message": "max_tokens asks for 100 tokens; this server writes at most 64 per request",
                         "type": "invalid_request_error", "param": "max_tokens", "code": "max_tokens_limit"}}
    page.route("**/v1/completions", lambda route: route.fulfill(status=400, json=refusal))
    page.click("#generate")
    expect(page.locator("#error-text")).to_have_text("Length asks for 100 tokens; this server writes at most 64 per request")
    expect(page.locator("#max-tokens")).to_have_attribute("aria-invalid", "true")


def test_values_look_like_values_and_an_empty_prompt_says_what_it_does(open_page):
    """#27.3: numbers in the ink colour, a placeholder that reads as one, and Generate on an empty box says
    that the model writes from nothing."""
    page = open_page()
    for field in ("#max-tokens", "#temperature", "#top-k", "#top-p"):
        assert page.eval_on_selector(field, "e => getComputedStyle(e).color") == INK
    placeholder = page.eval_on_selector("#prompt", "e => [e.placeholder, getComputedStyle(e, '::placeholder').fontStyle]")
    assert placeholder == ["Type the first words of a text…", "italic"]
    expect(page.locator("#prompt-hint")).to_contain_text("Empty: the model writes from nothing")
    page.fill("#max-tokens", "5")
    page.click("#generate")
    expect(page.locator("#output-note")).to_have_text("No prompt: the model writes from nothing (an unconditional sample).")
    expect(page.locator("#write-status")).to_contain_text("seed", timeout=30_000)


def test_keyboard_only_tabs_and_token_details(open_page, tokenizer):
    """#27.4 and #27.7: the tabs follow the arrow keys (ARIA tabs); the tokens take focus one at a time
    (a roving tabindex), their details open on focus and close on Escape."""
    page = open_page()
    page.focus("#tab-write")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-check")).to_be_focused()
    expect(page.locator("#tab-check")).to_have_attribute("aria-selected", "true")
    assert page.is_visible("#panel-check") and page.get_attribute("#tab-write", "tabindex") == "-1"
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#panel-write")).to_be_visible()
    page.keyboard.press("End")
    expect(page.locator("#panel-check")).to_be_visible()
    page.fill("#check-text", CHECK)
    page.focus("#check-text")
    page.keyboard.press("Tab")
    expect(page.locator("#check")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#tokens .tok")).to_have_count(len(tokenizer.encode(CHECK)))
    page.keyboard.press("Tab")
    tokens = page.locator("#tokens .tok")
    expect(tokens.first).to_be_focused()
    expect(page.locator("#tooltip")).to_contain_text("rank")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(tokens.nth(2)).to_be_focused()
    assert page.locator("#tokens .tok[tabindex='0']").count() == 1  # one stop in the tab order
    expect(tokens.nth(2)).to_have_attribute("aria-describedby", "tooltip")
    expect(page.locator("#tooltip")).to_contain_text(page.text_content("#tokens .tok >> nth=2").strip() or "rank")
    page.keyboard.press("Escape")
    expect(page.locator("#tooltip")).to_be_hidden()
    page.keyboard.press("End")
    expect(tokens.last).to_be_focused()


def test_on_a_phone_tap_for_details_and_the_score_comes_first(open_page, tokenizer):
    """#27.4: on a 390x844 touch screen a tap opens a token's details (another tap closes them), and the
    detector's score sits above the token box, on screen with the start of the result."""
    page = open_page(phone=True)
    page.tap("#tab-check")
    page.fill("#check-text", CHECK * 3)
    page.tap("#check")
    tokens = page.locator("#tokens .tok")
    expect(tokens).to_have_count(len(tokenizer.encode(CHECK * 3)), timeout=15_000)
    tokens.nth(3).tap()
    expect(page.locator("#tooltip")).to_be_visible()
    expect(page.locator("#tooltip")).to_contain_text("The model expected")
    tokens.nth(3).tap()
    expect(page.locator("#tooltip")).to_be_hidden()
    page.locator("#result").scroll_into_view_if_needed()
    score, box = page.locator("#score").bounding_box(), page.locator("#tokens").bounding_box()
    assert score["y"] < box["y"] and score["y"] + score["height"] <= 844
    assert box["height"] <= 0.5 * 844  # the token box scrolls inside itself
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll


def test_options_are_checked_before_sending(open_page):
    """#27.5: out-of-range options mark their fields and send nothing; fixed, they send."""
    page = open_page()
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/completions" in r.url else None)
    bad = {"#max-tokens": ("100000", "from 1 to 127"), "#temperature": ("-3", "between 0 and 2"),
           "#top-k": ("2.5", "whole number"), "#top-p": ("0", "more than 0"), "#seed": ("-1", "Seed must")}
    page.fill("#prompt", PROMPT)
    for field, (value, _) in bad.items():
        page.fill(field, value)
    page.click("#generate")
    for field, (_, words) in bad.items():
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
        expect(page.locator(field + "-error")).to_contain_text(words)
    expect(page.locator("#max-tokens")).to_be_focused()
    page.wait_for_timeout(200)
    assert sent == [] and page.is_hidden("#output")
    for field, value in {"#max-tokens": "5", "#temperature": "1", "#top-k": "40", "#top-p": "1", "#seed": ""}.items():
        page.fill(field, value)
    page.click("#generate")
    expect(page.locator("#write-status")).to_contain_text("seed", timeout=30_000)
    assert len(sent) == 1 and page.locator("[aria-invalid='true']").count() == 0


def test_the_detector_says_what_it_knows_past_its_minimum(open_page, tokenizer):
    """#27.6: what it was trained on, its measured accuracy at this length, neutral colours, no jargon;
    below 50 tokens no score at all."""
    page = open_page()
    check(page, CHECK, len(tokenizer.encode(CHECK)))  # 59 tokens: past the minimum of 50
    score = page.locator("#score")
    expect(score).to_contain_text("Trained on the page's test texts.")
    expect(score).to_contain_text("Measured accuracy: 61% at 0-64 tokens, this text's length, on test.jsonl (100 texts)")
    for part in ("#score .fake", "#score .odds"):
        assert page.eval_on_selector(part, "e => getComputedStyle(e).color") == INK
    assert page.eval_on_selector("#score .meter div", "e => getComputedStyle(e).backgroundColor") == "rgb(123, 133, 147)"
    assert "updated as you type" not in page.content()
    short = "Scientists found a herd of unicorns."
    check(page, short, len(tokenizer.encode(short)))
    expect(score).to_contain_text("says nothing below 50 tokens")
    assert page.locator("#score .fake").count() == 0


def test_header_icon_banner_separable_tokens_and_examples(open_page, model, tokenizer):
    """#27.7: a short model name, a favicon, an error banner that moves nothing, a hairline between tokens,
    and ready examples: people's (Python's documentation) and this model's own sample."""
    page = open_page()
    assert page.evaluate("fetch('/favicon.ico').then(r => r.status)") == 200
    assert page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    check(page, CHECK, len(tokenizer.encode(CHECK)))
    before = [page.locator(s).bounding_box()["y"] for s in ("#check", "#tokens")]
    page.fill("#check-text", "")
    page.click("#check")
    expect(page.locator("#error")).to_be_visible()
    assert page.locator("#check").bounding_box()["y"] == before[0]
    assert page.eval_on_selector("#error", "e => getComputedStyle(e).position") == "fixed"
    check(page, CHECK, len(tokenizer.encode(CHECK)))
    assert page.locator("#tokens").bounding_box()["y"] == before[1]
    shadows = page.locator("#tokens .tok").evaluate_all("s => s.slice(0, 3).map(t => getComputedStyle(t).boxShadow)")
    assert shadows[0] == "none" and all("inset" in s for s in shadows[1:])
    expect(page.locator("#example-list button")).to_have_count(3)
    expect(page.locator("#example-list button").first).to_contain_text("Human: Python docs")
    page.click("#example-model")
    (sample,) = generate(model, [model.config.bos_token_id], max_new_tokens=120, top_k=40, seed=1, tokenizer=tokenizer)
    expect(page.locator("#check-text")).to_have_value(sample.text, timeout=30_000)
    expect(page.locator("#tokens .tok")).to_have_count(len(tokenizer.encode(sample.text)), timeout=15_000)


def test_stop_button_and_markup_shown_as_text(open_page):
    page = open_page()
    page.fill("#prompt", "<img src=x onerror=alert(1)>")
    page.fill("#max-tokens", "100")
    page.click("#generate")
    page.wait_for_function("document.getElementById('output-text').textContent.length > 0")
    page.click("#stop")
    expect(page.locator("#write-status")).to_contain_text("stopped")
    assert page.locator("#output img").count() == 0
    page.click("#tab-check")
    page.click("#check")
    expect(page.locator("#error")).to_contain_text("Paste a text")
    expect(page.locator("#check-text")).to_have_attribute("aria-invalid", "true")
    page.click("#error-close")
    expect(page.locator("#error")).to_be_hidden()


def test_screenshots_of_both_views_at_both_sizes(open_page, tmp_path):
    """The docs' screenshots (GPT2_WEB_SCREENSHOTS=docs/web writes them there): each under 300 KB."""
    out = Path(os.environ.get("GPT2_WEB_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    for size, phone in (("desktop", False), ("phone", True)):
        page = open_page(phone=phone)
        page.fill("#prompt", PROMPT)
        page.fill("#max-tokens", "60")
        page.fill("#seed", "7")
        page.click("#generate")
        expect(page.locator("#write-status")).to_contain_text("seed 7", timeout=30_000)
        page.screenshot(path=str(out / f"write-{size}.png"))
        page.click("#tab-check")
        page.fill("#check-text", CHECK + " The fox runs to the river and the dog sleeps in the sun.")
        page.click("#check")
        expect(page.locator("#score .fake")).to_be_visible(timeout=15_000)
        page.locator("#tokens .tok").nth(6).click()
        page.screenshot(path=str(out / f"check-{size}.png"))
    for shot in out.glob("*.png"):
        assert 10_000 < shot.stat().st_size < 300_000, shot

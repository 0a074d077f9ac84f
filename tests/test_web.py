"""The web page in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against the app under
uvicorn on a loopback port, at 1280x900 and as a 390x844 touch phone: writing, checking, and each finding of
issue #27. GPT2_WEB_SCREENSHOTS=docs/web writes the docs' screenshots there. Skips when Chromium or Playwright
is absent (`apt-get install -y chromium`, `pip install playwright`; never `playwright install`)."""

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
CORPUS = ["The quick brown fox jumps over the lazy dog. ", "A small model learns the shape of the sentences it reads. ",
          "Scientists found a herd of unicorns living in a remote valley in the Andes. ",
          "The unicorns spoke perfect English, which surprised the scientists. ",
          "Every morning the fox runs to the river and the dog sleeps in the sun. "]
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
    """P(machine) = score(text), 0.73 unless told; keeps the texts it scored."""

    def __init__(self, name: str = "test detector", score=lambda text: 0.73) -> None:
        self.name, self.of, self.calls = name, score, []

    def score(self, texts):
        self.calls.extend(texts)
        return [self.of(t) for t in texts]


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    return Tokenizer.train(CORPUS * 20, vocab_size=400)


@pytest.fixture(scope="module")
def model(tokenizer, one_thread):
    """A nano GPT trained for a few seconds on CORPUS: it continues those sentences, so the page shows
    readable text and GLTR colours that mean something (green where it learned, red elsewhere). On one
    thread (conftest's one_thread, for the module): faster for a model this small on a busy CPU."""
    torch.manual_seed(0)
    model = PacedGPT(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size))
    ids = torch.tensor(tokenizer.encode("".join(CORPUS) * 30))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(120):
        starts = torch.randint(0, len(ids) - 49, (8,)).tolist()
        batch = torch.stack([ids[s : s + 49] for s in starts])
        _, loss = GPT.forward(model, batch[:, :-1], batch[:, 1:])  # unpaced
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


# What serve.py reads from a detector's files: what it was trained on, accuracy by length (gpt2 detect eval).
ABOUT = {"trained_on": "the page's test texts", "accuracy": 0.8, "accuracy_on": "test.jsonl", "accuracy_texts": 200,
         "by_length": [{"bucket": "0-64", "n": 100, "accuracy": 0.61},
                       {"bucket": "64-128", "n": 100, "accuracy": 0.85}]}
MAX_CHECK = 600  # tokens the test server checks at once
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 1}
INK = "rgb(35, 38, 43)"
expect = sync_api.expect


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
        contexts.append(browser.new_context(**(PHONE if phone else DESKTOP)))
        page = contexts[-1].new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status == 404 else None)
        page.goto(url or server_url)
        expect(page.locator("#model-name")).to_have_text("nano-demo")
        return page

    yield make
    for context in contexts:
        context.close()
    assert problems == []


def fill(page, fields: dict) -> None:
    for selector, value in fields.items():
        page.fill(selector, str(value))


def shows(page, texts: dict[str, str], timeout: float = 5_000) -> None:
    """Each selector's element comes to contain its text."""
    for selector, text in texts.items():
        expect(page.locator(selector)).to_contain_text(text, timeout=timeout)


def keys(page, *names: str) -> None:
    for name in names:
        page.keyboard.press(name)


def write(page, prompt: str, length: int, seed: int | str = "") -> None:
    fill(page, {"#prompt": prompt, "#max-tokens": length, "#seed": seed})
    page.click("#generate")
    expect(page.locator("#write-status")).to_contain_text(f"seed {seed}", timeout=30_000)


def check(page, text: str, count: int) -> None:
    page.click("#tab-check")
    page.fill("#check-text", text)
    page.click("#check")
    expect(page.locator("#tokens .tok")).to_have_count(count, timeout=15_000)
    expect(page.locator("#result")).not_to_have_class("result stale")


def fail_completions(page, status: int, message: str, param: str | None = None) -> None:
    error = {"error": {"message": message, "type": "server_error", "param": param, "code": None}}
    page.route("**/v1/completions", lambda route: route.fulfill(status=status, json=error))


def style(page, selector: str, prop: str, pseudo: str = "") -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e, '{pseudo}').{prop}")


def shoot(page, name: str) -> None:
    """A screenshot for the docs (GPT2_WEB_SCREENSHOTS=docs/web), each under 300 KB; else into nowhere."""
    out = os.environ.get("GPT2_WEB_SCREENSHOTS")
    data = page.screenshot(path=str(Path(out) / f"{name}.png") if out else None)
    assert 10_000 < len(data) < 300_000, name


def test_write_then_check_in_the_browser(open_page, model, tokenizer):
    page = open_page()
    # Write: the continuation streams in and equals generate() with the page's options and seed
    fill(page, {"#prompt": PROMPT, "#max-tokens": 40, "#temperature": 0.8, "#seed": 7})
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
    shoot(page, "write-desktop")
    # Check: coloured tokens, histogram, detector score, details on hover
    page.click("#to-check")
    expect(page.locator("#tokens .tok")).to_have_count(len(tokenizer.encode(PROMPT + text)))
    check(page, CHECK, len(tokenizer.encode(CHECK)))
    assert page.text_content("#tokens") == CHECK and page.locator("#tokens b").count() == 0  # <b> as text
    tokens = page.locator("#tokens .tok")
    colours = set(tokens.evaluate_all("spans => spans.map(s => getComputedStyle(s).backgroundColor)"))
    gltr = {"rgb(173, 255, 128)", "rgb(255, 234, 128)", "rgb(255, 146, 128)", "rgb(229, 176, 255)"}
    assert colours <= gltr and len(colours) >= 2  # learned words green, surprises further down
    assert page.locator("#histogram .hrow").count() == 4
    widths = page.locator("#histogram .hbar").evaluate_all("bars => bars.map(b => parseFloat(b.style.width))")
    assert sum(widths) == pytest.approx(100, abs=0.5)
    # #27.6: the detector says what it was trained on and its accuracy at this length (CHECK is 59 tokens:
    # past the minimum of 50), in neutral colours
    shows(page, {"#window-note": "whole text at once", "#score .fake": "Model-written 73.0%",
                 "#score .real": "Human-written 27.0%", "#score": "Trained on the page's test texts."})
    shows(page, {"#score": "Measured accuracy: 61% at 0-64 tokens, this text's length, on test.jsonl (100 texts)"})
    assert style(page, "#score .fake", "color") == style(page, "#score .odds", "color") == INK
    assert style(page, "#score .meter div", "backgroundColor") == "rgb(123, 133, 147)"
    assert "updated as you type" not in page.content()
    tokens.nth(3).hover()
    shows(page, {"#tooltip": "rank", "#tooltip table": "%"})  # and the model's own guesses
    shoot(page, "check-desktop")
    check(page, "Scientists found a herd of unicorns.", len(tokenizer.encode("Scientists found a herd of unicorns.")))
    shows(page, {"#score": "says nothing below 50 tokens"})
    assert page.locator("#score .fake").count() == 0


def test_the_probability_follows_the_text_as_it_is_typed(open_page, model, tokenizer):
    """OpenAI's detector demo: no button; the probability updates once typing pauses (debounced, one check
    per pause, not one per keystroke). A detector nothing was said about claims no accuracy."""
    detector = FakeDetector("unicorn counter", lambda text: min(1.0, 0.25 * text.count("unicorn")))
    first = "Scientists found a unicorn"
    app = create_app(model, tokenizer, model_name="nano-demo", detector=detector, detector_min_tokens=1)
    with serve_in_thread(app) as url:
        page = open_page(url=url)
        page.click("#tab-check")
        page.locator("#check-text").press_sequentially(first, delay=20)
        expect(page.locator("#score .fake")).to_have_text("Model-written 25.0%", timeout=15_000)
        shows(page, {"#check-count": f"{len(tokenizer.encode(first))} tokens", "#score": "unicorn counter"})
        page.locator("#check-text").press_sequentially(" and a second unicorn.", delay=20)
        assert "stale" in page.get_attribute("#result", "class")  # greyed while it is for an older text
        shows(page, {"#score .fake": "Model-written 50.0%"}, timeout=15_000)
        shows(page, {"#score .real": "Human-written 50.0%", "#score": "Measured accuracy: not measured"})
        assert detector.calls[-1] == "Scientists found a unicorn and a second unicorn."
        assert len(detector.calls) <= 4  # 48 keystrokes, two pauses: debounced
        page.fill("#check-text", "")
        page.wait_for_timeout(900)
        assert page.is_hidden("#error") and page.is_hidden("#result")  # emptying the box is not an error


def test_a_failure_leaves_no_stale_result(open_page, tokenizer):
    """#27.1: a failed check hides the previous colours and score; a failed generation hides its box (no
    echo of a huge prompt), and an earlier text is greyed once the options no longer produce it."""
    page = open_page()
    check(page, CHECK, len(tokenizer.encode(CHECK)))  # colours and a score on the page, then a failure:
    page.fill("#check-text", "Scientists found a unicorn. " * 80)  # more than the server checks at once
    page.click("#check")
    shows(page, {"#error": f"checks at most {MAX_CHECK} tokens"})
    assert page.is_hidden("#result") and page.locator("#tokens .tok").count() == 0 == len(page.text_content("#score"))
    expect(page.locator("#check-text")).to_have_attribute("aria-invalid", "true")
    page.click("#tab-write")
    write(page, PROMPT, 5, 1)
    page.fill("#prompt", "The quick brown fox jumps. " * 800)  # 21,600 characters: beyond the context
    page.click("#generate")
    expect(page.locator("#prompt[aria-invalid=true] ~ #prompt-fit")).to_be_visible()  # marked, and "keep the end"
    expect(page.locator("#output")).to_have_class("output stale")  # the old text no longer answers the form
    fail_completions(page, 500, "generation failed: RuntimeError: out of memory")
    page.fill("#prompt", PROMPT)
    page.click("#generate")
    expect(page.locator("#error")).to_contain_text("Generation failed: RuntimeError: out of memory")
    assert page.is_hidden("#output") and page.is_hidden("#output-actions")


def test_a_live_token_count_and_keeping_the_end_of_a_long_prompt(open_page, tokenizer):
    """#27.2: the prompt's tokens counted as you type; "Use as prompt" past the context offers to keep the
    last tokens that fit; a server error names the page's field in the page's words."""
    page = open_page()
    page.locator("#prompt").press_sequentially(PROMPT, delay=10)
    expect(page.locator("#prompt-count")).to_have_text(f"{len(tokenizer.encode(PROMPT))} tokens")
    write(page, PROMPT, 100, 3)
    whole = PROMPT + page.text_content("#output-text")
    page.click("#continue")  # 105 tokens, and Length asks for 100 more
    shows(page, {"#prompt-fit": "this model reads at most 128 tokens in all", "#keep-last": "Keep the last 28 tokens"})
    page.click("#keep-last")
    expect(page.locator("#prompt-fit")).to_be_hidden()
    kept = page.input_value("#prompt")
    assert whole.endswith(kept) and 0 < len(tokenizer.encode(kept)) <= 28
    expect(page.locator("#prompt-count")).to_have_text(f"{len(tokenizer.encode(kept))} tokens")
    fail_completions(page, 400, "max_tokens asks for 100 tokens; this server writes at most 64", "max_tokens")
    page.click("#generate")
    expect(page.locator("#error-text")).to_have_text("Length asks for 100 tokens; this server writes at most 64")
    expect(page.locator("#max-tokens")).to_have_attribute("aria-invalid", "true")


def test_options_are_checked_before_sending_and_look_like_values(open_page):
    """#27.5: out-of-range options mark their fields and send nothing; fixed, they send. #27.3: numbers in
    the ink colour, a placeholder that reads as one, and an empty prompt says the model writes from nothing."""
    page = open_page()
    assert {style(page, field, "color") for field in ("#max-tokens", "#temperature", "#top-k", "#top-p")} == {INK}
    assert (page.get_attribute("#prompt", "placeholder"), style(page, "#prompt", "fontStyle", "::placeholder")) == (
        "Type the first words of a text…", "italic")
    expect(page.locator("#prompt-hint")).to_contain_text("Empty: the model writes from nothing")
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/completions" in r.url else None)
    bad = {"#max-tokens": ("100000", "from 1 to 127"), "#temperature": ("-3", "between 0 and 2"),
           "#top-k": ("2.5", "whole number"), "#top-p": ("0", "more than 0"), "#seed": ("-1", "Seed must")}
    fill(page, {field: value for field, (value, _) in bad.items()})
    page.click("#generate")
    shows(page, {field + "-error": words for field, (_, words) in bad.items()})
    assert page.locator("[aria-invalid=true]").count() == len(bad)
    expect(page.locator("#max-tokens")).to_be_focused()
    page.wait_for_timeout(200)
    assert sent == [] and page.is_hidden("#output")
    fill(page, {"#temperature": 1, "#top-k": 40, "#top-p": 1})
    write(page, "", 5, 2)
    shows(page, {"#output-note": "No prompt: the model writes from nothing (an unconditional sample)."})
    assert len(sent) == 1 and page.locator("[aria-invalid='true']").count() == 0


def test_keyboard_only_tabs_and_token_details(open_page, tokenizer):
    """#27.4 and #27.7: the tabs follow the arrow keys (ARIA tabs); the tokens take focus one at a time
    (a roving tabindex), their details open on focus and close on Escape."""
    page = open_page()
    page.focus("#tab-write")
    keys(page, "ArrowRight")
    expect(page.locator("#tab-check[aria-selected=true][tabindex='0']")).to_be_focused()
    assert page.is_visible("#panel-check") and page.get_attribute("#tab-write", "tabindex") == "-1"
    keys(page, "ArrowLeft")
    expect(page.locator("#panel-write")).to_be_visible()
    keys(page, "End")
    page.fill("#check-text", CHECK)  # End: the last tab, Check text
    page.focus("#check-text")
    keys(page, "Tab", "Enter")
    tokens = page.locator("#tokens .tok")
    expect(tokens).to_have_count(len(tokenizer.encode(CHECK)))
    keys(page, "Tab")  # from the button into the text: its first token
    expect(tokens.first).to_be_focused()
    shows(page, {"#tooltip": "rank"})
    keys(page, "ArrowRight", "ArrowRight")
    expect(page.locator("#tokens .tok:nth-child(3)[aria-describedby=tooltip]")).to_be_focused()
    assert page.locator("#tokens .tok[tabindex='0']").count() == 1  # one stop in the tab order
    keys(page, "Escape", "End")
    expect(tokens.last).to_be_focused()
    keys(page, "Escape")
    expect(page.locator("#tooltip")).to_be_hidden()


def test_on_a_phone_tap_for_details_and_the_score_comes_first(open_page, tokenizer):
    """#27.4: on a 390x844 touch screen a tap opens a token's details (another tap closes them), and the
    detector's score sits above the token box, on screen with the start of the result."""
    page = open_page(phone=True)
    write(page, PROMPT, 60, 7)
    shoot(page, "write-phone")
    page.tap("#tab-check")
    check(page, CHECK * 3, len(tokenizer.encode(CHECK * 3)))
    tokens = page.locator("#tokens .tok")
    shoot(page, "check-phone")
    tokens.nth(3).tap()
    shows(page, {"#tooltip": "The model expected"})
    tokens.nth(3).tap()
    expect(page.locator("#tooltip")).to_be_hidden()
    page.locator("#result").scroll_into_view_if_needed()
    score, box = page.locator("#score").bounding_box(), page.locator("#tokens").bounding_box()
    assert score["y"] < box["y"] and score["y"] + score["height"] <= 844
    assert box["height"] <= 0.5 * 844  # the token box scrolls inside itself
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll


def test_header_icon_banner_separable_tokens_and_examples(open_page, model, tokenizer):
    """#27.7: a favicon, an error banner that moves nothing, a hairline between tokens, and ready examples:
    people's (Python's documentation: long, so also #27.2's windows) and this model's own sample. Markup is
    shown as text, and Stop stops."""
    page = open_page()
    assert page.evaluate("fetch('/favicon.ico').then(r => r.status)") == 200  # and no 404 for it (open_page)
    check(page, CHECK, len(tokenizer.encode(CHECK)))
    before = [page.locator(s).bounding_box()["y"] for s in ("#check", "#tokens")]
    page.fill("#check-text", "")
    page.click("#check")
    shows(page, {"#error": "Paste a text"})
    assert page.locator("#check").bounding_box()["y"] == before[0] and style(page, "#error", "position") == "fixed"
    page.click("#error-close")
    check(page, CHECK, len(tokenizer.encode(CHECK)))
    assert page.is_hidden("#error") and page.locator("#tokens").bounding_box()["y"] == before[1]
    shadows = page.locator("#tokens .tok").evaluate_all("s => s.slice(0, 3).map(t => getComputedStyle(t).boxShadow)")
    assert shadows[0] == "none" and all("inset" in s for s in shadows[1:])
    expect(page.locator("#example-list button")).to_have_count(3)
    page.locator("#example-list button").first.click()  # Python's documentation: ~530 tokens here
    text = page.input_value("#check-text")
    n = len(tokenizer.encode(text))  # #27.2: past the context (128 tokens), scored in rolling windows
    expect(page.locator("#tokens .tok")).to_have_count(n, timeout=20_000)
    assert n > 128 and page.text_content("#tokens") == text
    shows(page, {"#window-note": "overlapping windows of 128 tokens, each 64 further on", "#check-count": f"{n} tokens",
                 "#score": f"the mean over {-(-n // 128)} windows"})
    page.click("#example-model")
    (sample,) = generate(model, [model.config.bos_token_id], max_new_tokens=120, top_k=40, seed=1,
                         tokenizer=tokenizer)
    expect(page.locator("#check-text")).to_have_value(sample.text, timeout=30_000)
    expect(page.locator("#tokens .tok")).to_have_count(len(tokenizer.encode(sample.text)), timeout=15_000)
    page.click("#tab-write")
    fill(page, {"#prompt": "<img src=x onerror=alert(1)>", "#max-tokens": 100})
    page.click("#generate")
    page.wait_for_function("document.getElementById('output-text').textContent.length > 0")
    page.click("#stop")
    shows(page, {"#write-status": "stopped"})
    assert page.locator("#output img").count() == 0


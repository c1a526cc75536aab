"""The live SMS counter (static/campaigns/compose.js) in Chromium counts exactly as
campaigns/compose.py does: the counter partial and a message box on a blank page, the script
added from its file, then the same texts counted on both sides."""

import dataclasses
import random
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from playwright.sync_api import expect

from campaigns.compose import (
    GSM_BASIC,
    GSM_EXTENDED,
    LONGEST_VALUES,
    SAMPLE_VALUES,
    SMS_MAX_SEGMENTS,
    ComposeError,
    compile_template,
    sms_counter_text,
    sms_segments,
    sms_text,
)

pytestmark = pytest.mark.browser

SCRIPT = Path(settings.BASE_DIR) / "static" / "campaigns" / "compose.js"
OPT_OUT = "Reply STOP to opt out"
PRICE = Decimal("0.0079")
RECIPIENTS = 2468

EMOJI = "😀🎉👍🏽❤️🇺🇸🍕"
OTHER = "çêáíóú’“”ЖжλΩ中文한글"


def texts() -> list[str]:
    """30 texts: GSM only, with extension characters, with emoji or other letters, short and
    long (up to 1,000 characters), some with merge fields."""
    chance = random.Random(20261205)
    plain = GSM_BASIC
    alphabets = [plain, plain + GSM_EXTENDED, plain + EMOJI, plain + OTHER,
                 plain + GSM_EXTENDED + EMOJI + OTHER, EMOJI, "€^|~" + plain[:20]]
    out = ["", "a" * 160, "a" * 161, "€" * 80, "€" * 81, "a" * 152 + "€" + "a" * 152, "😀" * 1000,
           "a" * 500 + "😀" * 500, "ж" * 66 + "😀" + "ж" * 66,
           "Hi {first_name}, your {tier} reward {reward_name} is waiting: code {reward_code}"]
    while len(out) < 30:
        length = chance.choice([1, 5, 60, 70, 71, 134, 153, 159, 160, 161, 306, 307, 700, 1000])
        alphabet = chance.choice(alphabets)
        text = "".join(chance.choice(alphabet) for _ in range(length))
        if chance.random() < 0.3:
            at = chance.randrange(len(text) + 1)
            text = text[:at] + " {first_name} " + text[at:]
        out.append(text)
    return out


@pytest.fixture
def compose_page(page):
    counter = render_to_string("campaigns/_sms_counter.html", {
        "opt_out_line": OPT_OUT, "segment_price": PRICE, "recipients": RECIPIENTS})
    page.set_content(f"""<!DOCTYPE html><html lang="en"><body><form>
        <textarea name="sms_body" data-sms-body></textarea>{counter}</form></body></html>""")
    page.add_script_tag(path=str(SCRIPT))
    return page


def test_the_script_counts_segments_as_the_server_does(compose_page):
    samples = texts()
    assert len(samples) == 30 and any(len(text) >= 1000 for text in samples)
    counted = compose_page.evaluate("texts => texts.map(text => window.smsCompose.segments(text))", samples)
    for text, theirs in zip(samples, counted, strict=True):
        assert theirs == dataclasses.asdict(sms_segments(text)), text[:80]


def test_the_counter_reads_as_the_server_would_as_the_marketer_types(compose_page):
    box = compose_page.locator("textarea[data-sms-body]")
    line = compose_page.locator("[data-sms-counter-text]")
    warning = compose_page.locator("[data-sms-counter-warning]")
    problem = compose_page.locator("[data-sms-counter-error]")
    for body in texts()[1:]:
        box.fill(body)
        try:
            template = compile_template(body)
        except ComposeError:
            rendered, refused = body, True
        else:
            rendered = template.render(SAMPLE_VALUES)
            longest = sms_segments(sms_text(template.render(LONGEST_VALUES), OPT_OUT))
            refused = longest.segments > SMS_MAX_SEGMENTS
        count = sms_segments(sms_text(rendered, OPT_OUT))
        expect(line).to_have_text(sms_counter_text(count, recipients=RECIPIENTS, price=PRICE))
        if count.encoding == "UCS-2":
            expect(warning).to_be_visible()
            expect(warning).to_have_text(
                f"Contains emoji or special characters: {count.per_segment} per segment")
        else:
            expect(warning).to_be_hidden()
        if refused:
            expect(problem).to_be_visible()
        else:
            expect(problem).to_be_hidden()


def test_the_counter_shows_the_example_and_the_problems(compose_page):
    box = compose_page.locator("textarea[data-sms-body]")
    counter = compose_page.locator("[data-sms-counter]")
    # "Hi Maria, " (10) and 110 x: 120 characters, then "\n" and the opt-out line (21): 142.
    box.fill("Hi {first_name}, " + "x" * 110)
    expect(counter.locator("[data-sms-counter-text]")).to_have_text(
        "142 characters · GSM-7 · 1 segment · about $19.50 for 2,468 recipients")
    expect(counter).not_to_have_class("sms-counter muted small sms-counter-wide")
    box.fill("Party time 🎉")
    expect(counter.locator("[data-sms-counter-warning]")).to_have_text(
        "Contains emoji or special characters: 70 per segment")
    expect(counter).to_have_class("sms-counter muted small sms-counter-wide")
    box.fill("Hi {frist_name}")
    expect(counter.locator("[data-sms-counter-error]")).to_contain_text(
        "The message uses {frist_name}, which is not a merge field")
    box.fill("a" * 1470 + " {reward_name}")
    expect(counter.locator("[data-sms-counter-error]")).to_have_text(
        "The message is too long: with long names and the opt-out line it could take 11 segments "
        "(1,534 characters); the most is 10 segments and 1,600 characters.")

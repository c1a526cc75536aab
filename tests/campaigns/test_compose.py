"""Composing campaign messages: merge fields, SMS segments and cost, the opt-out line, links,
and the email every recipient gets (HTML and text)."""

import json
import time
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.template.loader import render_to_string

from campaigns.compose import (
    EMAIL_TEMPLATES,
    GSM_BASIC,
    LONGEST_VALUES,
    MERGE_FIELDS,
    SAMPLE_VALUES,
    SMS_MAX_SEGMENTS,
    ComposeError,
    SegmentCount,
    compile_template,
    email_check,
    email_headers,
    email_render,
    links_find,
    links_replace,
    merge_fields_check,
    sms_check,
    sms_cost,
    sms_counter_context,
    sms_counter_text,
    sms_segments,
    sms_text,
)
from campaigns.models import Campaign
from stores.errors import DomainError

OPT_OUT = "Reply STOP to opt out"


# --- Merge fields -------------------------------------------------------------------------------

def test_merge_fields_are_the_documented_ones_in_order():
    assert list(MERGE_FIELDS) == ["first_name", "last_name", "points", "tier", "store", "reward_code",
                                  "reward_name"]
    assert set(SAMPLE_VALUES) == set(LONGEST_VALUES) == set(MERGE_FIELDS)
    assert len(LONGEST_VALUES["first_name"]) == 20


def test_a_template_fills_its_fields_and_leaves_missing_ones_blank():
    template = compile_template("Hi {first_name} {last_name}, you have {points} points at {store}.")
    assert template.fields == {"first_name", "last_name", "points", "store"}
    assert template.render({"first_name": "Ann", "last_name": None, "points": 1200}) == \
        "Hi Ann , you have 1200 points at ."


def test_doubled_braces_are_literal_braces():
    template = compile_template("{{first_name}} is written like that; {first_name}}} ok")
    assert template.fields == {"first_name"}
    assert template.render({"first_name": "Ann"}) == "{first_name} is written like that; Ann} ok"


def test_a_field_is_found_whatever_its_case_and_spaces():
    assert compile_template("Hi { First_Name }").render({"first_name": "Ann"}) == "Hi Ann"


def test_an_unknown_field_is_refused_with_the_right_ones_named():
    with pytest.raises(ComposeError) as caught:
        merge_fields_check("Hi {frist_name}!", field="sms_body")
    error = caught.value
    assert isinstance(error, DomainError)
    assert error.code == "invalid_message"
    assert error.extra == {"field": "sms_body"}
    assert error.message.startswith("The message uses {frist_name}, which is not a merge field")
    assert "did you mean {first_name}?" in error.message
    assert ("{first_name}, {last_name}, {points}, {tier}, {store}, {reward_code}, {reward_name}"
            in error.message)


def test_an_open_brace_never_closed_is_refused_where_it_is():
    with pytest.raises(ComposeError) as caught:
        merge_fields_check("Hello {first_name", field="email_subject")
    assert caught.value.message == "A { in the subject is not closed."
    assert caught.value.extra["field"] == "email_subject"
    with pytest.raises(ComposeError, match="not closed"):
        merge_fields_check("Hello {first {last_name}", field="sms_body")


def test_a_lone_closing_brace_is_refused():
    with pytest.raises(ComposeError) as caught:
        merge_fields_check("Smile :}", field="email_body")
    assert "A } in the email text has no opening {" in caught.value.message
    merge_fields_check("Smile :}}", field="email_body")


# --- SMS segments -------------------------------------------------------------------------------

def test_an_empty_text_is_no_segments():
    assert sms_segments("") == SegmentCount("GSM-7", 0, 0, 0, 160)


def test_gsm_7_holds_160_in_one_message_and_153_in_each_part():
    assert sms_segments("a" * 160) == SegmentCount("GSM-7", 160, 160, 1, 160)
    assert sms_segments("a" * 161) == SegmentCount("GSM-7", 161, 161, 2, 153)
    assert sms_segments("a" * 306).segments == 2
    assert sms_segments("a" * 307).segments == 3


def test_the_whole_gsm_basic_table_is_gsm_7_and_letters_outside_it_are_not():
    assert len(GSM_BASIC) == 127  # 128 positions less the escape
    for char in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r":
        assert sms_segments(f"Caf{char}").encoding == "GSM-7", char
    assert sms_segments(GSM_BASIC).units == 127
    for char in "çêáíóúÁ`’“":
        assert sms_segments(f"Caf{char}").encoding == "UCS-2", char


def test_extension_characters_take_two_septets():
    assert sms_segments("^{}\\[~]|€\f") == SegmentCount("GSM-7", 10, 20, 1, 160)
    assert sms_segments("€" * 80).segments == 1  # 160 septets
    assert sms_segments("€" * 81) == SegmentCount("GSM-7", 81, 162, 2, 153)


def test_an_extension_character_is_never_split_between_segments():
    # 152 + 2 + 152 = 306 septets, two full parts were it splittable; but the € does not fit
    # in the first part's last septet: 152 | € + 151 | 1 -> 3 segments.
    assert sms_segments("a" * 152 + "€" + "a" * 152) == SegmentCount("GSM-7", 305, 306, 3, 153)


def test_ucs_2_holds_70_in_one_message_and_67_in_each_part():
    assert sms_segments("ж" * 70) == SegmentCount("UCS-2", 70, 70, 1, 70)
    assert sms_segments("ж" * 71) == SegmentCount("UCS-2", 71, 71, 2, 67)
    assert sms_segments("ж" * 134).segments == 2
    assert sms_segments("a" * 159 + "ç").encoding == "UCS-2"
    assert sms_segments("a" * 159 + "ç").segments == 3  # 160 units: 67 + 67 + 26


def test_an_emoji_is_two_units_and_never_split_between_segments():
    assert sms_segments("😀" * 35) == SegmentCount("UCS-2", 35, 70, 1, 70)
    # 66 + 2 + 66 = 134 units, two full parts were the pair splittable; it is not:
    # 66 | 😀 + 65 | 1 -> 3 segments.
    assert sms_segments("ж" * 66 + "😀" + "ж" * 66) == SegmentCount("UCS-2", 133, 134, 3, 67)


def test_a_thousand_character_message_with_emoji():
    # 1,000 emoji: 2,000 UTF-16 units. A 67-unit part holds 33 emoji (66 units; the 34th would
    # be split), so 1,000 / 33 = 30 full parts and 10 emoji left: 31 segments (not 2000/67 -> 30).
    assert sms_segments("😀" * 1000) == SegmentCount("UCS-2", 1000, 2000, 31, 67)
    # 500 letters then 500 emoji: 1,500 units. Letters: 7 parts of 67 (469) and 31 in the 8th;
    # the 8th takes 18 emoji more (31 + 36 = 67). 482 emoji left at 33 a part: 14 parts (462)
    # and 20 in a 15th. 8 + 15 = 23 segments.
    assert sms_segments("a" * 500 + "😀" * 500) == SegmentCount("UCS-2", 1000, 1500, 23, 67)


# --- The text as sent ---------------------------------------------------------------------------

def test_the_opt_out_line_goes_on_its_own_line():
    assert sms_text("  Double points today!  \n", OPT_OUT) == "Double points today!\nReply STOP to opt out"
    assert sms_text("Line one\r\nLine two", OPT_OUT) == "Line one\nLine two\nReply STOP to opt out"


def test_the_opt_out_line_is_not_added_twice():
    body = "Double points today!\nreply  stop to\tOPT OUT"
    assert sms_text(body, OPT_OUT) == body
    assert sms_text("", OPT_OUT) == ""


def test_sms_check_counts_the_message_with_the_sample_values():
    count = sms_check("Hi {first_name}, double points today!", OPT_OUT, sample_values=SAMPLE_VALUES)
    # "Hi Maria, double points today!" (30) + "\n" + "Reply STOP to opt out" (21)
    assert count == SegmentCount("GSM-7", 52, 52, 1, 160)


def test_sms_check_refuses_an_empty_message_or_only_the_opt_out_line():
    for body in ("", "   \n "):
        with pytest.raises(ComposeError, match="The message is empty") as caught:
            sms_check(body, OPT_OUT, sample_values=SAMPLE_VALUES)
        assert caught.value.extra["field"] == "sms_body"
    with pytest.raises(ComposeError, match="nothing but the opt-out line"):
        sms_check("Reply stop to opt out", OPT_OUT, sample_values=SAMPLE_VALUES)


def test_sms_check_refuses_a_bad_merge_field_on_the_message():
    with pytest.raises(ComposeError) as caught:
        sms_check("Hi {name}", OPT_OUT, sample_values=SAMPLE_VALUES)
    assert caught.value.extra["field"] == "sms_body"
    assert "{name}" in caught.value.message


def test_sms_check_measures_with_the_longest_names():
    # Sample: 1470 + " " + "$5 off your next visit" (22) + "\n" + opt-out (21) = 1515 septets:
    # 10 segments. Longest reward name (41): 1534 septets, 11 segments: refused.
    body = "a" * 1470 + " {reward_name}"
    with pytest.raises(ComposeError, match="could take 11 segments") as caught:
        sms_check(body, OPT_OUT, sample_values=SAMPLE_VALUES)
    assert caught.value.extra["field"] == "sms_body"
    count = sms_check("a" * 1450 + " {reward_name}", OPT_OUT, sample_values=SAMPLE_VALUES)
    assert count.segments == SMS_MAX_SEGMENTS


def test_sms_check_refuses_a_merge_field_inside_a_link():
    with pytest.raises(ComposeError, match="inside the link https://shop.example.com/c="):
        sms_check("Your code: https://shop.example.com/c={reward_code}", OPT_OUT, sample_values=SAMPLE_VALUES)
    sms_check("Your code {reward_code}: https://shop.example.com/c", OPT_OUT, sample_values=SAMPLE_VALUES)


def test_sms_cost_is_to_the_cent_halves_up():
    assert sms_cost(1, 2468, Decimal("0.0079")) == Decimal("19.50")  # 19.4972
    assert sms_cost(3, 2468, Decimal("0.0079")) == Decimal("58.49")  # 58.4916
    assert sms_cost(1, 1, Decimal("0.005")) == Decimal("0.01")  # half: up, not to even
    assert sms_cost(0, 1000, Decimal("0.0079")) == Decimal("0.00")
    assert str(sms_cost(2, 10, Decimal("1"))) == "20.00"


def test_the_counter_line():
    count = sms_segments("x" * 142)
    assert sms_counter_text(count, recipients=2468, price=Decimal("0.0079")) == \
        "142 characters · GSM-7 · 1 segment · about $19.50 for 2,468 recipients"
    assert sms_counter_text(sms_segments("😀"), recipients=1, price=Decimal("0.5"), currency="CHF") == \
        "1 character · UCS-2 · 1 segment · about 0.50 CHF for 1 recipient"
    assert sms_counter_text(sms_segments("a" * 200), recipients=None, price=Decimal("1")) == \
        "200 characters · GSM-7 · 2 segments"


# --- Links --------------------------------------------------------------------------------------

def test_links_are_found_once_each_without_the_sentence_punctuation():
    text = ("See https://shop.example.com/deals. Or (https://b.example.com/x?y=1&z=2), "
            "HTTP://shop.example.com/deals! https://en.wikipedia.org/wiki/Foo_(bar); ftp://no.example.com "
            "and 'https://q.example.com/a' http:// too")
    assert links_find(text) == ["https://shop.example.com/deals", "https://b.example.com/x?y=1&z=2",
                                "HTTP://shop.example.com/deals", "https://en.wikipedia.org/wiki/Foo_(bar)",
                                "https://q.example.com/a"]
    assert links_find("no links here") == []


def test_links_are_replaced_whole():
    text = "https://a.example.com and https://a.example.com/x, then https://a.example.com."
    assert links_replace(text, {"https://a.example.com": "https://t.example/1"}) == \
        "https://t.example/1 and https://a.example.com/x, then https://t.example/1."


# --- Email --------------------------------------------------------------------------------------

EMAIL = {
    "template": "announcement",
    "subject": "{first_name}, double points this weekend",
    "preheader": "Your {tier} perks inside",
    "body": ("Hi {first_name},\n\nEverything at {store} earns double points.\n"
             "See https://shop.example.com/deals?a=1&b=2.\n\n\nThe team"),
    "button_text": "Shop now",
    "button_url": "https://shop.example.com/now",
}
BRANDING = {"company_name": "Bean & Leaf", "accent_color": "", "logo_url": "",
            "postal_address": "1 Main St, Denver, CO 80202"}


TRACKED = {"https://shop.example.com/deals?a=1&b=2": "https://go.example.com/l/1",
           "https://shop.example.com/now": "https://go.example.com/l/0"}


def track(url):
    return TRACKED[url]


def render(**changes):
    arguments = {**EMAIL, **BRANDING, "values": {"first_name": "Ann", "tier": "Gold", "store": "Downtown"},
                 "unsubscribe_url": "https://go.example.com/u/abc?c=1&r=2", "link": track, **changes}
    return email_render(**arguments)


class Tags(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.open, self.seen, self.problems = [], [], []

    def handle_starttag(self, tag, attrs):
        self.seen.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.problems.append(tag)


def parsed(html):
    tags = Tags()
    tags.feed(html)
    assert tags.problems == [] and tags.open == [], (tags.problems, tags.open)
    return tags.seen


def test_email_templates_are_the_campaign_choices():
    assert set(EMAIL_TEMPLATES) == set(Campaign.EmailTemplate.values)


@pytest.mark.parametrize("template", list(EMAIL_TEMPLATES))
def test_every_template_renders_a_whole_email(template):
    email = render(template=template)
    assert email.subject == "Ann, double points this weekend"
    tags = parsed(email.html)
    assert tags[0][0] == "html"
    assert "<script" not in email.html and "<style" not in email.html
    assert any(tag == "table" and attrs.get("role") == "presentation" for tag, attrs in tags)
    # The button and the link in the text go through the tracked-link hook.
    hrefs = [attrs["href"] for tag, attrs in tags if tag == "a"]
    assert hrefs == ["https://go.example.com/l/1", "https://go.example.com/l/0",
                     "https://go.example.com/u/abc?c=1&r=2"]
    assert "Shop now</a>" in email.html
    assert "1 Main St, Denver, CO 80202" in email.html
    assert "Bean &amp; Leaf" in email.html


def test_the_body_becomes_paragraphs_with_links_and_line_breaks():
    email = render()
    assert '<p style="margin:0 0 16px 0;">Hi Ann,</p>' in email.html
    assert ("Everything at Downtown earns double points.<br>\nSee <a href=\"https://go.example.com/l/1\""
            in email.html)
    assert ">https://shop.example.com/deals?a=1&amp;b=2</a>.</p>" in email.html
    assert '<p style="margin:0 0 16px 0;">The team</p>' in email.html


def test_values_are_escaped_in_the_html_and_kept_in_the_text():
    email = render(values={"first_name": '<img src=x onerror="alert(1)">', "store": "A&B"})
    assert "<img src=x" not in email.html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in email.html
    assert "Everything at A&amp;B earns" in email.html
    assert 'Hi <img src=x onerror="alert(1)">,' in email.text
    assert email.subject == '<img src=x onerror="alert(1)">, double points this weekend'


def test_only_the_marketers_links_become_links():
    email = render(values={"first_name": "Ann", "store": "https://elsewhere.example.com"})
    hrefs = [attrs["href"] for tag, attrs in parsed(email.html) if tag == "a"]
    assert "https://elsewhere.example.com" not in " ".join(hrefs)
    assert "Everything at https://elsewhere.example.com earns" in email.html


def test_a_value_cannot_break_the_subject_line():
    assert render(values={"first_name": "Ann\r\nBcc: x@example.com"}).subject == \
        "Ann Bcc: x@example.com, double points this weekend"


def test_the_preheader_is_hidden_at_the_top():
    tags = parsed(render().html)
    spans = [attrs for tag, attrs in tags if tag == "span" and attrs.get("class") == "preheader"]
    assert len(spans) == 1 and "display:none" in spans[0]["style"]
    assert ">Your Gold perks inside&#8204;" in render().html
    assert 'class="preheader"' not in render(preheader="").html


def test_branding_colours_the_header_and_button_and_shows_the_logo():
    default = render()
    assert default.html.count("background-color:#1f6f4a") == 2  # header bar and button
    branded = render(accent_color="#aa3355", logo_url="https://cdn.example.com/logo.png")
    assert "background-color:#1f6f4a" not in branded.html
    assert branded.html.count("background-color:#aa3355") == 2
    images = [attrs for tag, attrs in parsed(branded.html) if tag == "img"]
    assert images[0]["src"] == "https://cdn.example.com/logo.png" and images[0]["alt"] == "Bean & Leaf"
    # A colour that is not a hex colour never reaches a style attribute.
    assert "red;" not in render(accent_color="red;background:url(x)").html


def test_text_on_the_accent_and_links_stay_readable():
    dark = render(accent_color="#1f6f4a").html
    assert "font-weight:bold;color:#ffffff;text-decoration:none" in dark  # the button
    assert 'style="color:#1f6f4a;text-decoration:underline;' in dark
    light = render(accent_color="#e8a33d").html  # amber: white on it would be 2.2:1
    assert "font-weight:bold;color:#111827;text-decoration:none" in light
    assert ";color:#ffffff" not in light
    # A link in amber on white would be hard to read: links keep the text colour.
    assert 'style="color:#1f2937;text-decoration:underline;' in light


def test_the_text_part_carries_the_same_content():
    text = render().text
    assert text.startswith("Bean & Leaf\n\nHi Ann,\n\nEverything at Downtown earns double points.\n"
                           "See https://go.example.com/l/1.\n\nThe team\n")
    assert "Shop now: https://go.example.com/l/0" in text
    assert "1 Main St, Denver, CO 80202" in text
    assert text.rstrip().endswith("Unsubscribe: https://go.example.com/u/abc?c=1&r=2")
    assert "<" not in text.replace("<img", "")


def test_without_a_button_there_is_none():
    email = render(button_text="", button_url="")
    assert "Shop now" not in email.html and "Shop now" not in email.text
    assert [attrs["href"] for tag, attrs in parsed(email.html) if tag == "a"] == [
        "https://go.example.com/l/1", "https://go.example.com/u/abc?c=1&r=2"]


def test_email_headers_offer_one_click_unsubscribe():
    assert email_headers(unsubscribe_url="https://go.example.com/u/abc",
                         unsubscribe_post_url="https://go.example.com/u/abc/one-click") == {
        "List-Unsubscribe": "<https://go.example.com/u/abc/one-click>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_ten_thousand_emails_render_quickly():
    render()  # laid out once for the campaign
    started = time.perf_counter()
    for number in range(10_000):
        email = render(values={"first_name": f"Member {number}", "tier": "Gold", "store": "Downtown"},
                       unsubscribe_url=f"https://go.example.com/u/{number}")
    elapsed = time.perf_counter() - started
    assert "Member 9999" in email.html and "https://go.example.com/u/9999" in email.text
    assert elapsed < 5, f"10,000 emails took {elapsed:.2f} s"


def check(**changes):
    email_check(**{key: EMAIL[key] for key in ("subject", "preheader", "body", "button_text", "button_url",
                                               "template")} | changes)


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"subject": "  "}, "email_subject", "The subject is empty."),
    ({"subject": "Hi {frist_name}"}, "email_subject", "The subject uses {frist_name}"),
    ({"preheader": "Your {tier perks"}, "email_preheader", "A { in the preheader is not closed."),
    ({"body": ""}, "email_body", "The email text is empty."),
    ({"body": "Hi {nickname}"}, "email_body", "The email text uses {nickname}"),
    ({"body": "Go to https://x.example.com/{reward_code}"}, "email_body", "inside the link"),
    ({"button_url": ""}, "email_button_url", "The button has text but no link"),
    ({"button_text": ""}, "email_button_text", "The button has a link but no text"),
    ({"button_text": "Hi {x}"}, "email_button_text", "The button text uses {x}"),
    ({"button_url": "shop.example.com"}, "email_button_url", "is not a web address"),
    ({"button_url": "https://x.example.com/{reward_code}"}, "email_button_url", "can't hold a merge field"),
    ({"template": "offer", "button_text": "", "button_url": ""}, "email_button_text", "needs a button"),
    ({"template": "fancy"}, "email_template", "not an email template"),
])
def test_email_check_names_the_field(changes, field, words):
    with pytest.raises(ComposeError) as caught:
        check(**changes)
    assert caught.value.extra == {"field": field}
    assert words in caught.value.message


def test_email_check_passes_a_good_email():
    check()
    check(template="plain", button_text="", button_url="")
    check(template="offer")


# --- The counter partial ------------------------------------------------------------------------

def test_the_counter_partial_carries_what_the_script_needs():
    html = render_to_string("campaigns/_sms_counter.html", {
        "opt_out_line": 'Reply "STOP" to opt out', "segment_price": Decimal("0.0079"), "recipients": 2468})
    tags = parsed(f"<div>{html}</div>")
    counter = next(attrs for tag, attrs in tags if tag == "p")
    assert "data-sms-counter" in counter and counter["aria-live"] == "polite"
    assert counter["class"].split() == ["sms-counter", "muted", "small"]
    assert counter["data-opt-out-line"] == 'Reply "STOP" to opt out'
    assert counter["data-price"] == "0.0079" and counter["data-recipients"] == "2468"
    # Without a chosen member the script counts with the module's own sample values.
    assert json.loads(counter["data-sample-values"]) == SAMPLE_VALUES
    assert json.loads(counter["data-longest-values"]) == LONGEST_VALUES
    assert "style=" not in html and "<script" not in html


def test_the_counter_partial_reads_right_before_the_script_runs():
    context = sms_counter_context(body="Hi {first_name} 😀", opt_out_line=OPT_OUT,
                                  segment_price=Decimal("0.0079"), recipients=None,
                                  sample_values={"first_name": "Zoë"})
    html = render_to_string("campaigns/_sms_counter.html", context)
    counter = next(attrs for tag, attrs in parsed(f"<div>{html}</div>") if tag == "p")
    assert json.loads(counter["data-sample-values"]) == {"first_name": "Zoë"}
    assert counter["data-recipients"] == ""
    # "Hi Zoë 😀" (8 characters, 9 units) + "\n" + 21: 30 characters.
    assert "30 characters · UCS-2 · 1 segment</span>" in html
    assert "sms-counter-wide" in counter["class"]
    assert "Contains emoji or special characters: 70 per segment" in html

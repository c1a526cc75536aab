"""Settings › Branding: a company's logo and accent colour, on its staff pages and its
waiting-room tablet, and nowhere else."""

import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError
from django.db import transaction as db
from django.test import Client
from django.urls import reverse

from stores.branding import accent_ink, contrast_ratio
from stores.models import AuditEvent, Company, CompanyLogo, Role
from tests.factories import MembershipFactory, RetailStoreFactory


def png(width=2, height=1, extra=b"") -> bytes:
    """A real PNG image (`extra` pads it with a text chunk)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00\x80\xff" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + (chunk(b"tEXt", b"Comment\x00" + extra) if extra else b"")
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def upload(data: bytes, name="logo.png", content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def save(client, **fields):
    return client.post(reverse("branding_settings"), {"accent_color": "", **fields})


def test_an_admin_sets_the_logo_and_accent_and_every_staff_page_shows_them(admin_client, company):
    # when an admin uploads a logo and picks a dark green
    response = save(admin_client, accent_color="#1F6F4A", logo=upload(png()))
    assert response.status_code == 302
    company.refresh_from_db()
    assert company.accent_color == "#1f6f4a" and company.logo_version
    # then the top bar of a page shows the logo, and links the company's stylesheet
    html = admin_client.get(reverse("store_list")).content.decode()
    assert f'src="/branding/logo?v={company.logo_version}"' in html
    assert 'href="/branding.css?v=1f6f4a"' in html and 'class="topbar branded"' in html
    assert 'style="' not in html
    # which sets the accent and a text colour that reads on it (white on dark green)
    css = admin_client.get("/branding.css?v=1f6f4a")
    assert css["Content-Type"].startswith("text/css")
    assert css.content.decode().strip() == ":root { --accent: #1f6f4a; --accent-ink: #ffffff; }"
    assert "immutable" in css["Cache-Control"] and "private" in css["Cache-Control"]
    assert "no-cache" in admin_client.get("/branding.css?v=stale")["Cache-Control"]
    logo = admin_client.get(f"/branding/logo?v={company.logo_version}")
    assert logo.status_code == 200 and logo["Content-Type"] == "image/png" and logo.content == png()
    assert "immutable" in logo["Cache-Control"]
    # and the change is on the Activity trail
    event = AuditEvent.objects.get(company_id=company.pk, kind="company.branding_changed")
    assert event.changes["accent_color"] == [None, "#1f6f4a"]
    assert event.changes["logo_version"][1] == company.logo_version


def test_removing_the_logo_and_colour_brings_the_default_back(admin_client, company):
    save(admin_client, accent_color="#ffd60a", logo=upload(png()))
    assert save(admin_client, accent_color="", remove_logo="on").status_code == 302
    company.refresh_from_db()
    assert (company.accent_color, company.logo_version) == ("", "")
    assert not CompanyLogo.objects.filter(company=company).exists()
    html = admin_client.get(reverse("store_list")).content.decode()
    assert "/branding/logo" not in html and "/branding.css" not in html and 'class="topbar"' in html
    assert admin_client.get("/branding/logo").status_code == 404


@pytest.mark.parametrize("accent, ink", [("#1f6f4a", "#ffffff"), ("#ffd60a", "#101828"),
                                         ("#000000", "#ffffff"), ("#ffffff", "#101828"),
                                         ("#767676", "#ffffff")])
def test_the_text_on_the_accent_is_the_more_readable_of_black_and_white(accent, ink):
    assert accent_ink(accent) == ink
    assert contrast_ratio(accent, ink) >= 4.5


@pytest.mark.parametrize("typed, message", [
    ("red", "is not a colour"), ("#12345g", "is not a colour"), ("#fff", "is not a colour"),
])
def test_a_colour_that_is_not_hex_is_refused_with_a_message(admin_client, company, typed, message):
    response = save(admin_client, accent_color=typed)
    assert response.status_code == 400
    assert message in response.content.decode()
    company.refresh_from_db()
    assert company.accent_color == ""


def test_the_database_refuses_a_colour_that_is_not_hex(company):
    with pytest.raises(IntegrityError), db.atomic():
        Company.objects.filter(pk=company.pk).update(accent_color="blue")


@pytest.mark.parametrize("data, name, message", [
    (png(extra=b"x" * (600 * 1024)), "big.png", "it can be at most 512 KB"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "logo.svg", "SVG logos are not accepted"),
    (b"GIF89a not this one", "logo.gif", "must be a PNG, JPEG or WebP image"),
    (b"name,phone\n", "logo.png", "must be a PNG, JPEG or WebP image"),  # the name says PNG: the bytes don't
])
def test_a_logo_that_is_not_a_small_png_jpeg_or_webp_is_refused(admin_client, company, data, name, message):
    response = save(admin_client, accent_color="#1f6f4a", logo=upload(data, name=name))
    assert response.status_code == 400
    assert message in response.content.decode()
    company.refresh_from_db()
    assert company.logo_version == "" and company.accent_color == ""  # nothing of the form saved
    assert not CompanyLogo.objects.exists()


def test_only_admins_change_branding(client, login, company):
    marketer = MembershipFactory(company=company, role=Role.MARKETER).user
    assert login(client, marketer).get(reverse("branding_settings")).status_code == 403
    assert save(client, accent_color="#000000").status_code == 403


def test_a_logo_is_seen_by_its_own_company_only(admin_client, company, other_company):
    save(admin_client, accent_color="#1f6f4a", logo=upload(png()))
    company.refresh_from_db()
    url = f"/branding/logo?v={company.logo_version}"
    client = Client()
    # signed out: the sign-in page
    assert client.get(url).status_code == 302
    # a member of another company gets its own company's logo there, and it has none
    outsider = MembershipFactory(company=other_company, role=Role.ADMIN).user
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.get("/branding.css?v=1f6f4a").content == b""


def test_the_kiosk_shows_the_stores_company_branding(admin_client, company, other_company):
    save(admin_client, accent_color="#ffd60a", logo=upload(png()))
    company.refresh_from_db()
    client = Client()  # the tablet: nobody signed in
    store = RetailStoreFactory(company=company, opt_in_queue_enabled=True)
    kiosk = f"/queue/check-in/{store.checkin_token}/"
    html = client.get(kiosk).content.decode()
    assert f'src="{kiosk}logo?v={company.logo_version}"' in html
    assert f'href="{kiosk}branding.css?v=ffd60a"' in html and 'class="kiosk branded"' in html
    assert client.get(f"{kiosk}logo").content == png()
    assert b"--accent-ink: #101828" in client.get(f"{kiosk}branding.css").content
    # another company's tablet shows no logo; a switched-off link shows nothing
    elsewhere = RetailStoreFactory(company=other_company, opt_in_queue_enabled=True)
    assert client.get(f"/queue/check-in/{elsewhere.checkin_token}/logo").status_code == 404
    store.opt_in_queue_enabled = False
    store.save()
    assert client.get(f"{kiosk}logo").status_code == 404


def test_the_favicon_answers(client):
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain and response.redirect_chain[-1][0].endswith("favicon.svg")

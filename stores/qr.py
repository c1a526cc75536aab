"""QR codes, drawn on the server as inline SVG (no image files, no script)."""

import io

import segno


def qr_svg(data: str, *, title: str, scale: int = 4) -> str:
    qr = segno.make(data, error="m")
    svg = io.BytesIO()
    qr.save(svg, kind="svg", scale=scale, border=2, xmldecl=False, svgns=True, title=title)
    return svg.getvalue().decode()

"""Reading barcodes back in tests, independently of the library that drew them.

``decode_code128_svg`` reads the bars of an SVG as a scanner reads light and
dark: it measures every bar and gap, turns them into module widths and looks
them up in the Code 128 table written out below from the symbology, not
taken from the encoder. ``decode_png`` hands a screenshot to ZXing.
"""

import re
import struct
import zlib
from xml.etree import ElementTree

# Code 128 symbol values 0-106 as the widths of bar, space, bar, space, bar,
# space (the stop symbol, 106, ends with one more bar).
_TABLE = """
212222 222122 222221 121223 121322 131222 122213 122312 132212 221213
221312 231212 112232 122132 122231 113222 123122 123221 223211 221132
221231 213212 223112 312131 311222 321122 321221 312212 322112 322211
212123 212321 232121 111323 131123 131321 112313 132113 132311 211313
231113 231311 112133 112331 132131 113123 113321 133121 313121 211331
231131 213113 213311 213131 311123 311321 331121 312113 312311 332111
314111 221411 431111 111224 111422 121124 121421 141122 141221 112214
112412 122114 122411 142112 142211 241211 221114 413111 241112 134111
111242 121142 121241 114212 124112 124211 411212 421112 421211 212141
214121 412121 111143 111341 131141 114113 114311 411113 411311 113141
114131 311141 411131 211412 211214 211232 2331112
"""
PATTERNS = tuple(_TABLE.split())
VALUE_OF = {pattern: value for value, pattern in enumerate(PATTERNS)}
START = {103: "A", 104: "B", 105: "C"}
STOP = 106
CODE_C, CODE_B, CODE_A, SHIFT, FNC1 = 99, 100, 101, 98, 102


class BarcodeError(ValueError):
    """The image holds no valid Code 128 symbol."""


def decode_code128_svg(svg_text: str) -> str:
    """The text a Code 128 barcode drawn as SVG ``<rect>`` bars encodes.

    Checks the start and stop symbols and the checksum, as a scanner does."""
    root = ElementTree.fromstring(svg_text)
    bars = []
    for rect in root.iter("{http://www.w3.org/2000/svg}rect"):
        if rect.get("x") is None:
            continue  # the white background
        bars.append((_length(rect.get("x")), _length(rect.get("width"))))
    if not bars:
        raise BarcodeError("no bars")
    bars.sort()
    widths = []
    for (x, width), following in zip(bars, [*bars[1:], None], strict=True):
        widths.append(width)
        if following is not None:
            widths.append(following[0] - x - width)
    return decode_code128_widths(widths)


def decode_code128_widths(widths) -> str:
    """The text of a Code 128 symbol given as bar and space widths, bar first."""
    # Every Code 128 symbol has an element one module wide (six elements
    # summing to eleven modules cannot all be two or more), so the narrowest
    # element is the module.
    module = min(widths)
    if module <= 0:
        raise BarcodeError("overlapping bars")
    modules = [w / module for w in widths]
    if any(abs(m - round(m)) > 0.1 or not 1 <= round(m) <= 4 for m in modules):
        raise BarcodeError(f"bar widths are not whole modules: {modules}")
    digits = "".join(str(round(m)) for m in modules)
    if len(digits) < 6 * 3 + 7 or (len(digits) - 7) % 6:
        raise BarcodeError(f"{len(digits)} elements cannot form Code 128 symbols")
    values = [VALUE_OF.get(digits[i : i + 6]) for i in range(0, len(digits) - 7, 6)]
    if None in values or digits[-7:] != PATTERNS[STOP]:
        raise BarcodeError(f"unknown pattern in {digits}")
    start, *data, check = values
    if start not in START:
        raise BarcodeError(f"no start symbol: {start}")
    if (start + sum(i * value for i, value in enumerate(data, 1))) % 103 != check:
        raise BarcodeError("checksum mismatch")
    return _text(START[start], data)


def _text(code_set, values) -> str:
    out, shifted = [], False
    for value in values:
        current = ("B" if code_set == "A" else "A") if shifted else code_set
        shifted = False
        if current == "C" and value < 100:
            out.append(f"{value:02d}")
        elif current in "AB" and value < 96:
            if current == "B" or value < 64:
                out.append(chr(value + 32))
            else:
                out.append(chr(value - 64))
        elif value == CODE_C:
            code_set = "C"
        elif value == CODE_B and current != "B":
            code_set = "B"
        elif value == CODE_A and current != "A":
            code_set = "A"
        elif value == SHIFT and current in "AB":
            shifted = True
        elif value == FNC1:
            continue  # a GS1 marker, no character of its own
        else:
            raise BarcodeError(f"function code {value} in set {current} is not supported")
    return "".join(out)


def _length(value: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*(mm|px)?\s*", value or "")
    if not match:
        raise BarcodeError(f"unreadable length {value!r}")
    return float(match.group(1))


def decode_png(png: bytes) -> list[str]:
    """The texts of every barcode ZXing finds in a PNG image (a screenshot)."""
    import zxingcpp

    width, height, grey = _png_to_grey(png)
    image = memoryview(grey).cast("B", (height, width))
    return [found.text for found in zxingcpp.read_barcodes(image)]


def _png_to_grey(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and 8-bit grey pixels of a non-interlaced 8-bit RGB(A) or grey PNG."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise BarcodeError("not a PNG")
    offset, chunks, header = 8, [], None
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        body = png[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour, _compression, _filter, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise BarcodeError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    grey = bytearray()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        if channels >= 3:
            pixels = range(0, stride, channels)
            grey += bytes((line[i] * 299 + line[i + 1] * 587 + line[i + 2] * 114) // 1000 for i in pixels)
        else:
            grey += line[::channels]
        previous = line
    return width, height, bytes(grey)


def _unfilter(kind, line, previous, bpp):
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            upper_left = previous[i - bpp] if i >= bpp else 0
            estimate = left + up - upper_left
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
            predictor = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
            line[i] = (line[i] + predictor) & 0xFF
        elif kind != 0:
            raise BarcodeError(f"unknown PNG filter {kind}")

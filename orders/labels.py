"""Printable waybill labels (SPEC §6.1): which ticked orders get one, what
each label says, and the Code 128 barcode of its online waybill."""

from dataclasses import dataclass
from xml.dom import minidom

import barcode
from barcode.writer import SVGWriter
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from orders.choices import AppraisalResult, OrderState

# One sheet of labels is one print job: a printer queue takes a few hundred
# labels well, and the page stays quick to render.
MAX_LABELS = 200

# Thermal label printers print 8 dots per millimetre (203 dpi). A bar a whole
# number of dots wide prints sharp, so a module is 4, 3 or 2 dots wide: the
# widest that fits the label, as wide bars scan from further away.
MODULE_WIDTHS_MM = (0.5, 0.375, 0.25)
BARCODE_MAX_WIDTH_MM = 90  # the label is 100 mm wide; 5 mm margin each side
QUIET_ZONE_MODULES = 10  # the white a scanner needs either side of a Code 128 symbol
BAR_HEIGHT_MM = 28
PX_PER_MM = 96 / 25.4  # SVG user units are CSS pixels

# Why a ticked order gets no label. An order out of the viewer's scope is
# "not found", exactly like one that does not exist, so nothing is revealed.
NOT_FOUND = _("not found")
NO_WAYBILL = _("no online waybill yet")
REFUNDED = _("refunded: it must not be shipped")
# A refunded order keeps its waybill number, but its parcel must not leave.
NOT_TO_SHIP = frozenset({OrderState.REFUNDED, OrderState.AUTO_REFUNDED})


@dataclass(frozen=True)
class Label:
    """One 100 × 150 mm label: the order and what is printed on it."""

    order: object
    sender: str
    receiver: dict
    returning: bool
    barcode: SafeString


@dataclass(frozen=True)
class Refusal:
    """A ticked order that gets no label, and why."""

    order_no: str
    reason: str


def ticked(values) -> tuple[list[str], int]:
    """The distinct order numbers of a ``select`` list, in the order ticked,
    at most ``MAX_LABELS`` of them; and how many more were left out."""
    numbers = list(dict.fromkeys(value.strip() for value in values if value.strip()))
    return numbers[:MAX_LABELS], max(len(numbers) - MAX_LABELS, 0)


def labels_for(visible, organisation, order_nos) -> tuple[list[Label], list[Refusal]]:
    """The labels for ``order_nos`` among the ``visible`` orders, as
    ``organisation`` may see them, and a refusal for each other number.

    Both lists keep the order in which the numbers were ticked."""
    orders = visible.filter(order_no__in=order_nos).select_related("merchant", "provider")
    found = {order.order_no: order for order in orders}
    labels, refusals = [], []
    for number in order_nos:
        order = found.get(number)
        if order is None:
            refusals.append(Refusal(number, NOT_FOUND))
        elif not order.waybill_no:
            refusals.append(Refusal(number, NO_WAYBILL))
        elif order.state in NOT_TO_SHIP:
            refusals.append(Refusal(number, REFUNDED))
        else:
            labels.append(label_for(order, organisation))
    return labels, refusals


def label_for(order, organisation) -> Label:
    """The label of one order that has an online waybill.

    The parcel goes to the buyer, masked for a provider as on a privacy
    waybill; a failed item goes back to the merchant instead."""
    returning = order.appraisal_result == AppraisalResult.FAIL
    return Label(
        order=order,
        sender=order.provider.name,
        receiver={"name": order.merchant.name, "phone": "", "address": ""}
        if returning
        else order.buyer_for(organisation),
        returning=returning,
        barcode=code128_svg(order.waybill_no),
    )


def code128_svg(value: str) -> SafeString:
    """``value`` as a Code 128 barcode: an inline ``<svg>`` sized in millimetres,
    so it prints at true size, with no text of its own."""
    code = barcode.Code128(value, writer=SVGWriter())
    modules = len(code.build()[0]) + 2 * QUIET_ZONE_MODULES
    module = next((w for w in MODULE_WIDTHS_MM if modules * w <= BARCODE_MAX_WIDTH_MM), MODULE_WIDTHS_MM[-1])
    output = code.render(
        {
            "module_width": module,
            "module_height": BAR_HEIGHT_MM,
            "quiet_zone": QUIET_ZONE_MODULES * module,
            "margin_top": 0,
            "margin_bottom": 0,
            "write_text": False,
            "with_doctype": False,
            "compress": True,  # no indentation: the SVG is inlined once per label
        }
    )
    svg = minidom.parseString(output).documentElement
    for node in list(svg.childNodes):
        if node.nodeType == node.COMMENT_NODE:
            svg.removeChild(node)
    for group in svg.getElementsByTagName("g"):
        # The writer names its group; many labels on one page would repeat the id.
        group.removeAttribute("id")
    for rect in svg.getElementsByTagName("rect"):
        # The Content-Security-Policy forbids style attributes; a fill
        # attribute draws the same colour.
        fill = rect.getAttribute("style").removeprefix("fill:").rstrip(";").strip()
        rect.removeAttribute("style")
        if fill:
            rect.setAttribute("fill", fill)
    width, height = modules * module, BAR_HEIGHT_MM
    # A view box lets a narrow screen scale the barcode down instead of cutting it off.
    svg.setAttribute("viewBox", f"0 0 {width * PX_PER_MM:.3f} {height * PX_PER_MM:.3f}")
    svg.setAttribute("class", "label-barcode")
    svg.setAttribute("role", "img")
    svg.setAttribute("aria-label", value)
    svg.setAttribute("shape-rendering", "crispEdges")
    # Safe: the writer built it from our own waybill number, and minidom escapes attribute values.
    return mark_safe(svg.toxml())

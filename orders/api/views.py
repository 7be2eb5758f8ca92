import hashlib
import hmac

from django.db import OperationalError, transaction
from django.http import Http404
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.generics import ListAPIView
from rest_framework.metadata import SimpleMetadata
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import carrier, errors, workflow, worklists
from orders.api import serializers as s
from orders.choices import Action
from orders.filtersets import OrderFilterSet
from orders.models import CarrierScan, Order
from portal.api import IDEMPOTENCY_HEADER, ById, ErrorSerializer, actor_for, error_body, error_responses, idempotent
from portal.api_auth import HasOrganisation, WindowRateThrottle
from portal.models import CarrierIntegration
from portal.parsers import parse_json
from risks.api.serializers import OrderWithCasesSerializer
from risks.models import live_cases_of

ERRORS = error_responses(
    conflict="a refusal of the workflow: `invalid_transition`, `order_terminal`, `conflict`, "
    "`split_group_already_appraised`, `flow_blocked`, `already_blocked`, `not_blocked`, `order_exists`"
)
BATCH_ATTEMPTS = 3
LOCK_CONTENTION = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


IF_MATCH = OpenApiParameter(
    "If-Match",
    int,
    OpenApiParameter.HEADER,
    description="The order version you acted on; if it changed since, the answer is 409 `conflict`.",
)
# The order number in a step's path, documented as plain text.
ORDER_NO = OpenApiParameter("order_no", str, OpenApiParameter.PATH)


class ScopedFilterBackend(DjangoFilterBackend):
    """The web's order filters, with choices limited to the caller's organisation."""

    def get_filterset_kwargs(self, request, queryset, view):
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        kwargs["organisation"] = getattr(request.user, "organisation", None)
        return kwargs

    def filter_queryset(self, request, queryset, view):
        # A request that names none of the filters (a list's first page, a
        # worklist) is answered from the queryset as it is: the filter set's
        # copied filters, choices and form were a sixth of such an answer.
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not filterset_class.names_a_filter(request.query_params):
            return queryset
        return super().filter_queryset(request, queryset, view)


def _visible(request):
    return Order.objects.visible_to(request.user)


class OrderMetadata(SimpleMetadata):
    """OPTIONS of the orders. One order's endpoints describe no body here: the
    only ones that take one are the workflow's steps, documented in the schema."""

    def determine_actions(self, request, view):
        return {} if view.detail else super().determine_actions(request, view)


def _step(step):
    """The documentation of a workflow step's endpoint: who may take it, its body, its answers."""
    roles = ", ".join(sorted(str(r) for r in workflow.roles_for(step)))
    return extend_schema(
        summary=f"{Action(step).label} ({roles})",
        description="One workflow action on one order; answers with the order as it now is.",
        operation_id=f"orders_{step}",
        request=s.body_of(step),
        parameters=[IDEMPOTENCY_HEADER, IF_MATCH, ORDER_NO],
        responses={200: s.OrderSerializer, **ERRORS},
        tags=["orders"],
    )


@extend_schema_view(
    list=extend_schema(summary="List orders in your scope", responses={200: s.OrderSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(
        summary="One order with its event log and open risk cases", responses={200: OrderWithCasesSerializer, **ERRORS}
    ),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_field = "order_no"
    lookup_value_regex = "[^/]+"
    permission_classes = [HasOrganisation]
    metadata_class = OrderMetadata
    pagination_class = ById
    filter_backends = [ScopedFilterBackend]
    filterset_class = OrderFilterSet
    serializer_class = s.OrderSerializer

    def get_queryset(self):
        orders = _visible(self.request)
        if self.action == "retrieve":
            return orders.select_related("merchant", "provider")
        return orders.for_lists()

    def get_serializer_class(self):
        return s.OrderDetailSerializer if self.action == "retrieve" else s.OrderSerializer

    def retrieve(self, request, *args, **kwargs):
        order = self.get_object()
        order.live_cases = list(live_cases_of(order).shown_to(request.user))
        order._prefetched_objects_cache = {
            "events": order.events.select_related("actor_user", "actor_organisation").order_by("seq")
        }
        return Response(OrderWithCasesSerializer(order, context={"request": request}).data)

    @extend_schema(
        summary="Create an order (platform)",
        request=s.OrderCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.OrderSerializer, 200: s.OrderSerializer, **ERRORS},
        description="Sending the same order again answers 200 and changes nothing; the same `order_no` with "
        "a different body answers 409 `order_exists`.",
    )
    @idempotent
    def create(self, request):
        if not request.user.organisation.is_platform:
            return Response(
                error_body("not_allowed", _("Only the platform creates orders.")), status=status.HTTP_403_FORBIDDEN
            )
        body = s.OrderCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        numbered = Order.objects.filter(order_no=data["order_no"]).select_related("merchant", "provider")
        existing = numbered.first()
        if existing is None:
            try:
                order = workflow.create_order(actor_for(request), **data)
            except errors.Conflict:
                # The same order number created by a concurrent request: judge it like a repeat.
                existing = numbered.first()
                if existing is None:
                    raise
            else:
                return Response(self._show(order), status=status.HTTP_201_CREATED)
        if _same_creation(existing, data):
            return Response(self._show(existing), status=status.HTTP_200_OK)
        return Response(
            error_body("order_exists", _("Order %(no)s exists with different details.") % {"no": data["order_no"]}),
            status=status.HTTP_409_CONFLICT,
        )

    def _show(self, order):
        return s.OrderSerializer(order, context={"request": self.request}).data

    # --- the workflow's steps: one endpoint each, answering with the order as it now is

    @idempotent
    def _act(self, request, order_no, step):
        """Take ``step`` on the order with the body's parameters (``s.body_of``),
        from the version in If-Match or else the one just read. A retry with the
        same Idempotency-Key gets the first answer."""
        # The order and its split group read and locked at once, with what
        # the answer shows besides the order's own row (its organisations,
        # whether it has a group: a step changes neither), so the step reads
        # nothing again and the answer is built from what was read.
        with transaction.atomic():
            try:
                order, group = workflow.lock_in_scope(request.user.organisation, order_no)
            except Order.DoesNotExist:
                raise Http404 from None
            body = s.body_of(step)(data=request.data if request.data is not None else {})
            body.is_valid(raise_exception=True)
            expected = request.headers.get("If-Match", "").strip('"')
            if expected and not expected.isdigit():
                raise ParseError(_("If-Match must be the order version, a whole number."))
            moved = workflow.perform(
                order,
                step,
                actor_for(request),
                expected_version=int(expected) if expected else order.version,
                held_group=group,
                **body.validated_data,
            )
        moved.in_split_group = len(group) > 1
        return Response(s.OrderSerializer(moved, context={"request": request}).data)

    @_step(Action.SHIP)
    @action(detail=True, methods=["post"], url_path="ship")
    def ship(self, request, order_no):
        return self._act(request, order_no, Action.SHIP)

    @_step(Action.SIGN_IN)
    @action(detail=True, methods=["post"], url_path="sign-in")
    def sign_in(self, request, order_no):
        return self._act(request, order_no, Action.SIGN_IN)

    @_step(Action.VERIFY_PENDING)
    @action(detail=True, methods=["post"], url_path="verify-pending")
    def verify_pending(self, request, order_no):
        return self._act(request, order_no, Action.VERIFY_PENDING)

    @_step(Action.APPRAISE)
    @action(detail=True, methods=["post"], url_path="appraise")
    def appraise(self, request, order_no):
        return self._act(request, order_no, Action.APPRAISE)

    @_step(Action.INSPECT)
    @action(detail=True, methods=["post"], url_path="inspect")
    def inspect(self, request, order_no):
        return self._act(request, order_no, Action.INSPECT)

    @_step(Action.PACK)
    @action(detail=True, methods=["post"], url_path="pack")
    def pack(self, request, order_no):
        return self._act(request, order_no, Action.PACK)

    @_step(Action.PRINT_WAYBILL)
    @action(detail=True, methods=["post"], url_path="print-waybill")
    def print_waybill(self, request, order_no):
        return self._act(request, order_no, Action.PRINT_WAYBILL)

    @_step(Action.REPORT_BLOCKED)
    @action(detail=True, methods=["post"], url_path="report-blocked")
    def report_blocked(self, request, order_no):
        return self._act(request, order_no, Action.REPORT_BLOCKED)

    @_step(Action.SIGN_IN_ON_BEHALF)
    @action(detail=True, methods=["post"], url_path="sign-in-on-behalf")
    def sign_in_on_behalf(self, request, order_no):
        return self._act(request, order_no, Action.SIGN_IN_ON_BEHALF)

    @_step(Action.UNBLOCK)
    @action(detail=True, methods=["post"], url_path="unblock")
    def unblock(self, request, order_no):
        return self._act(request, order_no, Action.UNBLOCK)

    @_step(Action.EXTEND_DEADLINE)
    @action(detail=True, methods=["post"], url_path="extend-deadline")
    def extend_deadline(self, request, order_no):
        return self._act(request, order_no, Action.EXTEND_DEADLINE)

    @_step(Action.REFUND)
    @action(detail=True, methods=["post"], url_path="refund")
    def refund(self, request, order_no):
        return self._act(request, order_no, Action.REFUND)

    @_step(Action.CONFIRM)
    @action(detail=True, methods=["post"], url_path="confirm")
    def confirm(self, request, order_no):
        return self._act(request, order_no, Action.CONFIRM)


def _same_creation(order, data) -> bool:
    """Whether ``data`` describes ``order`` as it was created (the deadline as
    first given: an operator may have extended it since)."""
    first = order.events.filter(action=Action.CREATE).first()
    return workflow.same_creation(first.payload["changes"], Order(**data))


@extend_schema(
    summary="A provider's worklist",
    parameters=[
        OpenApiParameter("name", str, OpenApiParameter.PATH, enum=[w.slug for w in worklists.WORKLISTS]),
    ],
    responses={200: s.OrderSerializer(many=True), **ERRORS},
)
class WorklistView(ListAPIView):
    permission_classes = [HasOrganisation]
    pagination_class = ById
    filter_backends = [ScopedFilterBackend]
    filterset_class = OrderFilterSet
    serializer_class = s.OrderSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        worklist = worklists.BY_SLUG.get(self.kwargs["name"])
        if worklist is None:
            return Order.objects.none()
        return _visible(self.request).filter(worklist.condition).for_lists()

    def list(self, request, *args, **kwargs):
        # Worklists are a provider's; for anyone else they are not there.
        if self.kwargs["name"] not in worklists.BY_SLUG or not request.user.organisation.is_provider:
            return Response(error_body("not_found", _("No such worklist.")), status=status.HTTP_404_NOT_FOUND)
        return super().list(request, *args, **kwargs)


class CarrierThrottle(WindowRateThrottle):
    """One budget per client address (from the trusted proxies only), counted atomically."""

    scope = "carrier"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


@extend_schema(
    summary="Carrier scans (signed webhook)",
    request=s.CarrierBatchSerializer,
    parameters=[
        OpenApiParameter(
            "X-Signature",
            str,
            OpenApiParameter.HEADER,
            required=True,
            description="Hex HMAC-SHA256 of the raw body with the integration's secret.",
        )
    ],
    responses={
        200: s.CarrierBatchResultSerializer,
        **ERRORS,
        403: OpenApiResponse(
            ErrorSerializer,
            description="`carrier_not_allowed`: a scan names a carrier the signing integration is not bound to",
        ),
    },
    auth=[],
)
class CarrierEventsView(APIView):
    """Scans from carriers. The signature authenticates and binds the batch to
    the integration's carrier codes; the batch is stored whole or not at all,
    in PostgreSQL, before anything of it is applied."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [CarrierThrottle]

    def post(self, request):
        raw = request.body
        integrations = _signed_by_a_carrier(raw, request.headers.get("X-Signature", ""))
        if not integrations:
            return Response(
                error_body("bad_signature", _("X-Signature is missing or does not match the body.")),
                status=status.HTTP_401_UNAUTHORIZED,
            )
        # The signature is over the raw bytes, so the body is parsed here, with
        # the same limits (size, depth, encoding) as every other JSON body.
        data = parse_json(raw)
        batch = s.CarrierBatchSerializer(data=data)
        batch.is_valid(raise_exception=True)
        events = batch.validated_data["events"]
        refused = _not_signed_for(integrations, events)
        if refused:
            return Response(
                error_body(
                    "carrier_not_allowed",
                    _("This integration may not send scans for carrier %(codes)s; nothing of the batch was stored.")
                    % {"codes": ", ".join(refused)},
                    {"events": [_("Not a carrier of this integration: %(code)s.") % {"code": c} for c in refused]},
                ),
                status=status.HTTP_403_FORBIDDEN,
            )
        # 1. Store the whole batch as pending: once this commits, no scan of it
        #    can be lost, whatever happens to the rest of the request.
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                stored = carrier.store_scans(events)
                break
            except OperationalError as exc:
                # The database aborted the insert on lock contention (scans go
                # in sorted, so two batches sharing scans wait for each other
                # rather than deadlock): it rolled back whole and runs again.
                if getattr(exc.__cause__, "sqlstate", None) not in LOCK_CONTENTION:
                    raise
                if attempt == BATCH_ATTEMPTS:
                    return Response(
                        error_body("conflict", _("Other scans were changing the same orders. Send this batch again.")),
                        status=status.HTTP_409_CONFLICT,
                    )
        # 2. Apply the new ones: the scans that each move their order one step
        #    as one set, the rest one by one. One that cannot be applied now
        #    stays pending and beat's periodic pass applies it.
        current = carrier.apply_batch([scan for scan, created in stored if created], attempts=BATCH_ATTEMPTS)
        # What the set did not settle may have moved meanwhile (a scan of the
        # batch can release another): read it back.
        unsettled = {scan.pk for scan, created in stored} - current.keys()
        if unsettled:
            current |= CarrierScan.objects.select_related("order").in_bulk(unsettled)
        results = [self._result(current[scan.pk], created) for scan, created in stored]
        saved = sum(created for scan, created in stored)
        return Response(
            {"received": len(results), "stored": saved, "duplicates": len(results) - saved, "results": results}
        )

    @staticmethod
    def _result(scan, created) -> dict:
        return {
            "tracking_no": scan.tracking_no,
            "status": scan.status,
            "duplicate": not created,
            "outcome": scan.outcome,
            "order_no": scan.order.order_no if scan.order_id else None,
        }


def _not_signed_for(integrations, events) -> list[str]:
    """The carrier codes in ``events`` that none of ``integrations`` may sign for."""
    allowed = frozenset().union(*(integration.codes for integration in integrations))
    return sorted({event["carrier"].strip().upper() for event in events} - allowed)


def _signed_by_a_carrier(raw: bytes, signature: str) -> list[CarrierIntegration]:
    """The active integrations whose secret signed ``raw`` (usually one; none for a bad signature)."""
    signature = signature.strip().lower()
    if len(signature) != 64:
        return []
    signed = []
    for integration in CarrierIntegration.objects.filter(is_active=True):
        if not integration.secret:  # a secret no key opens any more verifies nothing
            continue
        expected = hmac.new(integration.secret.encode(), raw, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, signature):
            signed.append(integration)
    return signed

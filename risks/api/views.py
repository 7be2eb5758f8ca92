from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Order
from portal.api import ERRORS, IDEMPOTENCY_HEADER, ById, StrictSerializer, actor_for, error_body, idempotent
from portal.api_auth import HasOrganisation
from risks import cases, escalations, reactions
from risks.api import serializers as s
from risks.choices import EscalationStatus
from risks.filtersets import CaseFilterSet, EscalationFilterSet
from risks.models import Escalation, RiskCase


@extend_schema_view(
    list=extend_schema(summary="Risk cases about your orders", responses={200: s.CaseSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One risk case", responses={200: s.CaseSerializer, **ERRORS}),
)
class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [HasOrganisation]
    serializer_class = s.CaseSerializer
    pagination_class = ById
    filter_backends = [DjangoFilterBackend]
    filterset_class = CaseFilterSet

    def get_queryset(self):
        return (
            RiskCase.objects.visible_to(self.request.user).shown_to(self.request.user).select_related("order", "owner")
        )


def object_action(*, name, tag, scoped, body, act, response, summary):
    """A POST endpoint doing ``act(obj, actor, data)`` to one object of the
    caller's scope (``scoped(request)``) and answering with it as ``response`` shows it."""

    @extend_schema(
        summary=summary,
        request=body,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: response, **ERRORS},
        operation_id=f"{tag}_{name}",
        tags=[tag],
    )
    @idempotent
    def post(self, request, pk):
        obj = get_object_or_404(scoped(request), pk=pk)
        payload = body(data=request.data if request.data is not None else {})
        payload.is_valid(raise_exception=True)
        act(obj, actor_for(request), payload.validated_data)
        obj.refresh_from_db()
        return Response(response(obj, context={"request": request}).data)

    view = f"{tag.title()}{name.title()}View"
    return type(view, (APIView,), {"permission_classes": [HasOrganisation], "post": post})


def case_action(name, body, act, summary):
    return object_action(
        name=name,
        tag="cases",
        scoped=lambda request: RiskCase.objects.visible_to(request.user)
        .shown_to(request.user)
        .select_related("order", "owner"),
        body=body,
        act=act,
        response=s.CaseSerializer,
        summary=summary,
    )


CaseAcknowledgeView = case_action(
    "acknowledge",
    s.CaseNoteSerializer,
    lambda case, actor, data: cases.acknowledge(case, actor, data.get("note", "")),
    "Acknowledge a case (its owner or the platform)",
)
CaseResolveView = case_action(
    "resolve",
    s.CaseResolveSerializer,
    lambda case, actor, data: cases.resolve(case, actor, data["note"]),
    "Resolve a case with a note (its owner or the platform)",
)
CaseEscalateView = case_action(
    "escalate",
    s.CaseEscalateSerializer,
    lambda case, actor, data: cases.escalate(case, actor, data["reason"]),
    "Escalate a case to the platform (merchant or provider)",
)


class SplitChoiceView(APIView):
    permission_classes = [HasOrganisation]

    @extend_schema(
        summary="The merchant's choice for a split group: A or B",
        request=s.SplitChoiceSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.SplitGroupSerializer, **ERRORS},
        tags=["split-groups"],
    )
    @idempotent
    def post(self, request, trade_no, sku):
        if not Order.objects.visible_to(request.user).split_group(trade_no, sku).exists():
            return Response(error_body("not_found", _("Not found.")), status=status.HTTP_404_NOT_FOUND)
        body = s.SplitChoiceSerializer(data=request.data if request.data is not None else {})
        body.is_valid(raise_exception=True)
        group = reactions.choose_split(trade_no, sku, body.validated_data["choice"], actor_for(request))
        return Response(
            {"trade_no": group.trade_no, "sku": group.sku, "choice": group.choice, "chosen_at": group.chosen_at}
        )


@extend_schema_view(
    list=extend_schema(
        summary="Escalations (the platform sees all; others those they raised)",
        responses={200: s.EscalationSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="One escalation with the thread you may see", responses={200: s.EscalationDetailSerializer, **ERRORS}
    ),
)
class EscalationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [HasOrganisation]
    serializer_class = s.EscalationSerializer
    pagination_class = ById
    filter_backends = [DjangoFilterBackend]
    filterset_class = EscalationFilterSet

    def get_queryset(self):
        return Escalation.objects.visible_to(self.request.user).select_related(
            "order", "raised_by_organisation", "raised_by_user", "assignee"
        )

    def get_serializer_class(self):
        return s.EscalationDetailSerializer if self.action == "retrieve" else s.EscalationSerializer

    @extend_schema(
        summary="Escalate an order, or one of its cases, to the platform",
        request=s.EscalationCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.EscalationSerializer, **ERRORS},
    )
    @idempotent
    def create(self, request):
        body = s.EscalationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        order = get_object_or_404(Order.objects.visible_to(request.user), order_no=data["order"])
        actor = actor_for(request)
        if "case" in data:
            case = get_object_or_404(RiskCase.objects.visible_to(request.user).filter(order=order), pk=data["case"])
            escalation = cases.escalate(case, actor, data["reason"], category=data.get("category"))
        else:
            escalation = cases.escalate_order(order, actor, data["reason"], data.get("category") or "other")
        return Response(s.EscalationSerializer(escalation).data, status=status.HTTP_201_CREATED)


def escalation_action(name, body, act, summary):
    return object_action(
        name=name,
        tag="escalations",
        scoped=lambda request: Escalation.objects.visible_to(request.user),
        body=body,
        act=act,
        response=s.EscalationDetailSerializer,
        summary=summary,
    )


class NoBody(StrictSerializer):
    pass


EscalationAssignView = escalation_action(
    "assign", NoBody, lambda e, actor, data: escalations.assign_to_me(e, actor), "Take the escalation (platform)"
)
EscalationCommentView = escalation_action(
    "comment",
    s.CommentSerializer,
    lambda e, actor, data: escalations.comment(e, actor, data["body"], internal=data["internal"]),
    "Add to the thread; internal notes are the platform's only",
)
EscalationResolveView = escalation_action(
    "resolve",
    s.CloseSerializer,
    lambda e, actor, data: escalations.close(e, actor, data["note"], EscalationStatus.RESOLVED),
    "Resolve with a note (platform)",
)
EscalationRejectView = escalation_action(
    "reject",
    s.CloseSerializer,
    lambda e, actor, data: escalations.close(e, actor, data["note"], EscalationStatus.REJECTED),
    "Reject with a note (platform)",
)

from rest_framework import serializers

from orders.api.serializers import OrderDetailSerializer, text
from orders.choices import SplitChoice
from portal.api import StrictSerializer
from risks.choices import EscalationCategory
from risks.models import Escalation, RiskCase


class CaseSerializer(serializers.ModelSerializer):
    order = serializers.SerializerMethodField(
        help_text="The case's order; for a split group's case, the first order of the group the caller may see."
    )
    owner = serializers.SlugRelatedField(slug_field="code", read_only=True)

    def get_order(self, case) -> str:
        # Querysets annotated by ``shown_to`` name an order the caller may see.
        return getattr(case, "order_shown", None) or case.order.order_no

    class Meta:
        model = RiskCase
        fields = [
            "id",
            "rule",
            "order",
            "trade_no",
            "sku",
            "owner",
            "severity",
            "status",
            "due_at",
            "money_at_risk",
            "opened_at",
            "acknowledged_at",
            "escalated_at",
            "resolved_at",
            "resolution",
            "note",
            "details",
        ]


class CaseNoteSerializer(StrictSerializer):
    note = text(required=False)


class CaseResolveSerializer(StrictSerializer):
    note = text()


class CaseEscalateSerializer(StrictSerializer):
    reason = text()


class SplitChoiceSerializer(StrictSerializer):
    choice = serializers.ChoiceField(choices=SplitChoice.choices)


class SplitGroupSerializer(serializers.Serializer):
    trade_no = serializers.CharField()
    sku = serializers.CharField()
    choice = serializers.CharField()
    chosen_at = serializers.DateTimeField()


class EscalationSerializer(serializers.ModelSerializer):
    order = serializers.SlugRelatedField(slug_field="order_no", read_only=True)
    raised_by_organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    raised_by_user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Escalation
        fields = [
            "id",
            "status",
            "category",
            "reason",
            "order",
            "case",
            "raised_by_organisation",
            "raised_by_user",
            "raised_by_rule",
            "assignee",
            "first_response_due_at",
            "created_at",
            "resolved_at",
        ]


class EntrySerializer(serializers.Serializer):
    kind = serializers.CharField()
    author = serializers.CharField(source="author.username", default=None)
    organisation = serializers.CharField(source="author_organisation.code", default=None)
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class EscalationDetailSerializer(EscalationSerializer):
    thread = serializers.SerializerMethodField()

    class Meta(EscalationSerializer.Meta):
        fields = [*EscalationSerializer.Meta.fields, "resolution_note", "thread"]

    def get_thread(self, escalation) -> EntrySerializer(many=True):
        request = self.context["request"]
        org = getattr(request.user, "organisation", None)
        entries = escalation.entries.visible_to_organisation(org).select_related("author", "author_organisation")
        return EntrySerializer(entries, many=True).data


class CommentSerializer(StrictSerializer):
    body = text(4000)
    internal = serializers.BooleanField(required=False, default=False)


class CloseSerializer(StrictSerializer):
    note = text(4000)


class EscalationCreateSerializer(StrictSerializer):
    order = text(64)
    case = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    reason = text()
    category = serializers.ChoiceField(choices=EscalationCategory.choices, required=False)


class OrderWithCasesSerializer(OrderDetailSerializer):
    """An order with its event log and its live risk cases."""

    open_cases = CaseSerializer(many=True, read_only=True, source="live_cases")

    class Meta(OrderDetailSerializer.Meta):
        fields = [*OrderDetailSerializer.Meta.fields, "open_cases"]

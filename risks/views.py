from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from orders import errors, splits, workflow
from orders.choices import Action, SplitChoice
from orders.fees import group_fees
from orders.forms import BY_SLUG, slug
from orders.forms import FORMS as ACTION_FORMS
from orders.models import Order, SplitGroup
from portal.choices import EventSource, OrganisationKind
from portal.paging import paginate
from risks import cases, escalations, reactions, rules
from risks.choices import LIVE_ESCALATIONS, CaseStatus, Rule
from risks.filtersets import CaseFilterSet, EscalationFilterSet
from risks.forms import AcknowledgeForm, CloseForm, CommentForm, EscalateForm, ResolveForm, SplitChoiceForm
from risks.models import Escalation, RiskCase
from risks.tables import CaseTable, EscalationTable


def _actor(request):
    return workflow.Actor.of_user(request.user, EventSource.WEB)


def _refusals(forms, shown) -> list[str]:
    """The reasons of refused forms the page no longer offers (the case or the
    escalation moved on meanwhile), each field's named by its label, so that
    they are shown at the top of the page instead of lost with their form."""
    reasons = []
    for key, form in forms.items():
        if shown.get(key) or not getattr(form, "errors", None):
            continue
        reasons += form.non_field_errors()
        reasons += [f"{field.label}: {error}" for field in form for error in field.errors]
    return reasons


def _paged(request, table):
    return paginate(request, table)


@login_required
def case_list(request):
    """Risk cases about the orders in the user's scope."""
    visible = RiskCase.objects.visible_to(request.user).shown_to(request.user).select_related("order", "owner")
    data = request.GET.copy()
    if "status" not in data:
        data["status"] = "open"
    filterset = CaseFilterSet(data, visible, request=request)
    rows = filterset.qs if filterset.is_valid() else visible.none()
    table = _paged(request, CaseTable(rows))
    return render(request, "risks/case_list.html", {"table": table, "filter": filterset})


def _visible_case(request, pk):
    cases = RiskCase.objects.visible_to(request.user).shown_to(request.user).select_related("order", "owner")
    return get_object_or_404(cases, pk=pk)


@login_required
def case_detail(request, pk, forms=None):
    """One case: what it is about, its history, the split group when it is one, and what the user may do."""
    case = _visible_case(request, pk)
    org = request.user.organisation
    may_act = case.is_live and cases.may_act(case, org)
    may_escalate = case.is_live and org is not None and not org.is_platform
    forms = forms or {}
    context = {
        "case": case,
        # A split group's case may be filed under another organisation's
        # order: show the viewer's own order of the group.
        "case_order": Order.objects.visible_to(request.user).get(order_no=case.order_shown),
        "events": case.events.select_related("actor_user", "actor_organisation"),
        "escalations": case.escalations.all(),
        "may_act": may_act,
        "may_acknowledge": may_act and case.status == CaseStatus.OPEN,
        "may_escalate": may_escalate,
        "acknowledge_form": forms.get("acknowledge", AcknowledgeForm()),
        "resolve_form": forms.get("resolve", ResolveForm()),
        "escalate_form": forms.get("escalate", EscalateForm()),
        "instructions": rules.RULES[case.rule].instructions,
    }
    if case.is_group_case or case.rule == Rule.UNCONFIRMABLE_SPLIT_ORDER:
        group = SplitGroup.objects.filter(trade_no=case.trade_no, sku=case.sku).first()
        context.update(
            group=Order.objects.visible_to(request.user).split_group(case.trade_no, case.sku).order_by("pk"),
            split=group,
            fees=group_fees(case.trade_no, case.sku, orders=Order.objects.visible_to(request.user)),
            split_form=forms.get("split", SplitChoiceForm(initial={"choice": group.choice if group else None})),
            may_choose=case.is_live and splits.chooses_for_group(org, case.trade_no, case.sku),
            choices=SplitChoice,
        )
    shown = {
        "acknowledge": context["may_acknowledge"],
        "resolve": may_act,
        "escalate": may_escalate,
        "split": context.get("may_choose", False),
    }
    context["refusals"] = _refusals(forms, shown)
    status = 400 if any(f.errors for f in forms.values()) else 200
    return render(request, "risks/case_detail.html", context, status=status)


def _case_action(request, pk, form_class, key, act):
    case = _visible_case(request, pk)
    form = form_class(request.POST)
    if form.is_valid():
        try:
            act(case, form.cleaned_data)
        except errors.NotAllowed:
            raise Http404 from None
        except errors.WorkflowError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("risks:case", pk=case.pk)
    return case_detail(request, pk, forms={key: form})


@login_required
@require_POST
def acknowledge(request, pk):
    def act(case, data):
        cases.acknowledge(case, _actor(request), data["note"])
        messages.success(request, _("Case acknowledged."))

    return _case_action(request, pk, AcknowledgeForm, "acknowledge", act)


@login_required
@require_POST
def resolve(request, pk):
    def act(case, data):
        cases.resolve(case, _actor(request), data["note"])
        messages.success(request, _("Case resolved."))

    return _case_action(request, pk, ResolveForm, "resolve", act)


@login_required
@require_POST
def escalate(request, pk):
    def act(case, data):
        cases.escalate(case, _actor(request), data["reason"], category=data.get("category") or None)
        messages.success(request, _("Sent to the platform."))

    return _case_action(request, pk, EscalateForm, "escalate", act)


@login_required
@require_POST
def choose_split(request, pk):
    """The merchant answers a split-order case with choice A or B."""

    def act(case, data):
        reactions.choose_split(case.trade_no, case.sku, data["choice"], _actor(request))
        messages.success(request, _("Your choice is recorded; the provider handles the orders accordingly."))

    return _case_action(request, pk, SplitChoiceForm, "split", act)


@login_required
@require_POST
def escalate_order(request, order_no):
    """Escalate an order to the platform, with a reason."""
    order = get_object_or_404(Order.objects.visible_to(request.user), order_no=order_no)
    form = EscalateForm(request.POST)
    if form.is_valid():
        try:
            cases.escalate_order(
                order, _actor(request), form.cleaned_data["reason"], form.cleaned_data.get("category") or "other"
            )
        except errors.NotAllowed:
            raise Http404 from None
        except errors.WorkflowError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Sent to the platform."))
    else:
        messages.error(request, _("Say why the platform is needed."))
    return redirect("orders:detail", order_no=order.order_no)


@login_required
def escalation_list(request):
    """The escalation queue: the platform sees all, others those their organisation raised.
    Nearest first-response time first; overdue unassigned ones are highlighted."""
    visible = Escalation.objects.visible_to(request.user).select_related("order", "raised_by_organisation", "assignee")
    filterset = EscalationFilterSet(request.GET or None, visible, request=request)
    if request.user.kind != OrganisationKind.PLATFORM:
        filterset.filters.pop("organisation", None)
        filterset.filters.pop("mine", None)
    rows = filterset.qs if filterset.is_bound and filterset.is_valid() else visible
    return render(
        request,
        "risks/escalation_list.html",
        {"table": _paged(request, EscalationTable(rows)), "filter": filterset},
    )


def _visible_escalation(request, pk):
    return get_object_or_404(
        Escalation.objects.visible_to(request.user).select_related(
            "order", "case", "raised_by_organisation", "raised_by_user", "assignee"
        ),
        pk=pk,
    )


@login_required
def escalation_detail(request, pk, forms=None):
    """An escalation with its order, case, thread, and what the user may do with it."""
    escalation = _visible_escalation(request, pk)
    org = request.user.organisation
    is_platform = org is not None and org.is_platform
    live = escalation.status in LIVE_ESCALATIONS
    actor = _actor(request)
    order_actions = []
    if is_platform and live:
        allowed = workflow.allowed_actions(escalation.order, actor)
        order_actions = [a for a in escalations.ORDER_ACTIONS if a in allowed]
    forms = forms or {}
    context = {
        "escalation": escalation,
        "order": escalation.order,
        "entries": escalation.entries.visible_to_organisation(org).select_related("author", "author_organisation"),
        "is_platform": is_platform,
        "live": live,
        "comment_form": forms.get("comment", CommentForm(internal_allowed=is_platform)),
        "close_form": forms.get("close", CloseForm()),
        "order_actions": [(slug(a), ACTION_FORMS[a](prefix=slug(a)), Action(a).label) for a in order_actions],
        "action_error": forms.get("action_error"),
    }
    shown = {"comment": True, "close": is_platform and live, "action_error": is_platform and live}
    context["refusals"] = _refusals(forms, shown)
    status = 400 if any(getattr(f, "errors", None) for f in forms.values() if hasattr(f, "errors")) else 200
    return render(request, "risks/escalation_detail.html", context, status=status)


def _escalation_action(request, pk, act, form=None, key=None, platform_only=False):
    escalation = _visible_escalation(request, pk)
    if platform_only and request.user.kind != OrganisationKind.PLATFORM:
        raise Http404
    if form is not None and not form.is_valid():
        return escalation_detail(request, pk, forms={key: form})
    try:
        act(escalation, form.cleaned_data if form is not None else {})
    except errors.NotAllowed:
        raise Http404 from None
    except errors.WorkflowError as exc:
        if form is not None:
            form.add_error(None, exc.message)
            return escalation_detail(request, pk, forms={key: form})
        messages.error(request, exc.message)
    return redirect("risks:escalation", pk=pk)


@login_required
@require_POST
def escalation_assign(request, pk):
    def act(escalation, data):
        escalations.assign_to_me(escalation, _actor(request))
        messages.success(request, _("The escalation is yours."))

    return _escalation_action(request, pk, act)


@login_required
@require_POST
def escalation_comment(request, pk):
    is_platform = request.user.kind == OrganisationKind.PLATFORM

    def act(escalation, data):
        escalations.comment(escalation, _actor(request), data["body"], internal=data.get("internal", False))

    return _escalation_action(request, pk, act, CommentForm(request.POST, internal_allowed=is_platform), "comment")


@login_required
@require_POST
def escalation_close(request, pk):
    def act(escalation, data):
        escalations.close(escalation, _actor(request), data["note"], status=data["status"])
        messages.success(request, _("The escalation is closed."))

    return _escalation_action(request, pk, act, CloseForm(request.POST), "close", platform_only=True)


@login_required
@require_POST
def escalation_order_action(request, pk, action):
    """An operator's step on the escalated order: extend the deadline, unblock, sign in on the provider's behalf."""
    if action not in BY_SLUG or BY_SLUG[action] not in escalations.ORDER_ACTIONS:
        raise Http404
    workflow_action = BY_SLUG[action]
    form = ACTION_FORMS[workflow_action](request.POST, prefix=action)
    form.fields["version"].required = False

    def act(escalation, data):
        params = {k: v for k, v in data.items() if k != "version" and v not in ("", None)}
        escalations.act_on_order(escalation, _actor(request), workflow_action, **params)
        messages.success(request, _("Done: %(action)s.") % {"action": Action(workflow_action).label})

    return _escalation_action(request, pk, act, form, "action_error", platform_only=True)

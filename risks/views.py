from contextlib import suppress
from dataclasses import asdict
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case as DbCase
from django.db.models import IntegerField, When
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from orders import errors, splits, workflow
from orders.choices import Action, BlockedStage, OrderState, SplitChoice
from orders.fees import group_fees
from orders.forms import BY_SLUG, slug
from orders.forms import FORMS as ACTION_FORMS
from orders.models import Order, SplitGroup
from portal.choices import EventSource, OrganisationKind
from portal.exports import download, format_of
from portal.paging import paginate
from risks import cases, escalations, findings, reactions, rules
from risks.choices import LIVE_ESCALATIONS, CaseStatus, Rule
from risks.exports import download_cases, download_escalations
from risks.filtersets import LIVE, CaseFilterSet, EscalationFilterSet
from risks.forms import (
    ME,
    AcknowledgeForm,
    AssignForm,
    CloseForm,
    CommentForm,
    EscalateForm,
    ResolveForm,
    SplitChoiceForm,
)
from risks.models import Escalation, ReplayRun, RiskCase, live_cases_of
from risks.replay import LOSS_COLUMNS
from risks.tables import CaseTable, EscalationTable, LossTable


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
    """Risk cases about the orders in the user's scope (``?export=csv`` or
    ``xlsx``: every case matching the filter, as a file)."""
    visible = RiskCase.objects.visible_to(request.user).shown_to(request.user).select_related("order", "owner")
    data = request.GET.copy()
    if "status" not in data:
        data["status"] = "open"
    filterset = CaseFilterSet(data, visible, request=request)
    rows = filterset.qs if filterset.is_valid() else visible.none()
    wanted = format_of(request)
    if wanted:
        return download_cases(rows, wanted)
    table = _paged(request, CaseTable(rows))
    return render(
        request, "risks/case_list.html", {"table": table, "filter": filterset, "query": _query_of(request.GET)}
    )


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


# Ticked rows a bulk assignment takes at most, and the session key of its
# per-row outcome, shown above the queue after the redirect.
BULK_LIMIT = 200
BULK_RESULTS = "escalation-bulk-results"
# The queue says how many escalations it holds up to this many.
COUNT_LIMIT = 1_000
# What an order's case found, in words: each key of ``RiskCase.details`` with
# its label and how its value is read (a code of these choices, or a time).
TIME = "time"
EVIDENCE = {
    "state": (gettext_lazy("order state when found"), OrderState),
    "stage": (gettext_lazy("where the flow is blocked"), BlockedStage),
    "arrived_at": (gettext_lazy("arrived at the provider"), TIME),
    "since": (gettext_lazy("in this state since"), TIME),
    "deadline": (gettext_lazy("deadline when found"), TIME),
    "scans": (gettext_lazy("carrier scans outside the online flow"), None),
    "orders": (gettext_lazy("orders in the split group"), None),
    "choice": (gettext_lazy("the merchant chose"), SplitChoice),
}


def _is_operator(request) -> bool:
    org = request.user.organisation if request.user.organisation_id else None
    return org is not None and org.is_platform


def queue(escalations):
    """The triage order: live and unassigned first, then live and taken, then
    closed; within each, the nearest first-response time first."""
    live = [s.value for s in LIVE_ESCALATIONS]
    rank = DbCase(
        When(status__in=live, assignee__isnull=True, then=0),
        When(status__in=live, then=1),
        default=2,
        output_field=IntegerField(),
    )
    return escalations.annotate(queue_rank=rank).order_by("queue_rank", "first_response_due_at", "pk")


def _query_of(data) -> str:
    """A list's filters as a query string: to come back to after a POST, to
    refresh the rows, to export them."""
    query = data.copy()
    for name in ("page", "take", "export"):
        query.pop(name, None)
    return query.urlencode()


@login_required
def escalation_list(request):
    """The escalation queue. Operators see every escalation and triage them:
    live ones by default, unassigned first, then by first-response time, with
    "Take it" on each row and a bulk assignment of the ticked rows (a POST
    here). Merchants and providers see those their organisation raised.
    ``?export=csv`` or ``xlsx``: every escalation matching the filter, as a file."""
    if request.method == "POST":
        return _bulk_assign(request)
    operator = _is_operator(request)
    operators = list(escalations.operators_of_platform()) if operator else []
    visible = Escalation.objects.visible_to(request.user).select_related("order", "raised_by_organisation", "assignee")
    data = request.GET.copy()
    if "status" not in data:
        data["status"] = LIVE
    filterset = EscalationFilterSet(data, visible, request=request, operators=operators)
    # "Assigned to" covers "mine"; the API keeps it.
    filterset.filters.pop("mine", None)
    if not operator:
        for name in ("organisation", "assignee"):
            filterset.filters.pop(name, None)
    # The queue's default is not a filter the person set: the filters stay folded on a phone.
    filterset.form.fields["status"].initial = LIVE
    filtered = filterset.qs if filterset.is_valid() else visible.none()
    wanted = format_of(request)
    if wanted:
        return download_escalations(queue(filtered), wanted)
    table = _paged(request, EscalationTable(queue(filtered), viewer=request.user))
    total = filtered.order_by()[: COUNT_LIMIT + 1].count()
    context = {
        "table": table,
        "filter": filterset,
        "query": _query_of(request.GET),
        "operator": operator,
        "assign_form": AssignForm(operators=operators),
        "total": min(total, COUNT_LIMIT),
        "total_capped": total > COUNT_LIMIT,
        "refresh_seconds": settings.LIST_REFRESH_SECONDS,
        "bulk_lines": request.session.pop(BULK_RESULTS, []) if not request.htmx else [],
    }
    if request.htmx:
        return render(request, "risks/_queue_results.html", context)
    return render(request, "risks/escalation_list.html", context)


def _id(value) -> int | None:
    """A row id as a form sends it, or ``None`` for anything else (no number
    a visitor types reaches the database out of its range)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _seen(request, pk):
    """The assignee the person saw on the escalation (``None``: nobody), or
    ``escalations.ANYONE`` when the form did not say."""
    value = request.POST.get(f"seen-{pk}", request.POST.get("seen"))
    if value is None:
        return escalations.ANYONE
    return _id(value)


def _back_to_queue(request):
    query = request.POST.get("query", "")
    return redirect(reverse("risks:escalations") + (f"?{query}" if query else ""))


def _bulk_assign(request):
    """Assign the ticked escalations to the person chosen, each on its own;
    the queue then lists what happened to each."""
    if not _is_operator(request):
        raise Http404
    operators = list(escalations.operators_of_platform())
    form = AssignForm(request.POST, operators=operators)
    chosen = [pk for pk in map(_id, request.POST.getlist("select")) if pk is not None][:BULK_LIMIT]
    if not form.is_valid():
        messages.error(request, _("Choose whom to assign them to."))
        return _back_to_queue(request)
    if not chosen:
        messages.info(request, _("No escalation was ticked."))
        return _back_to_queue(request)
    assignee = form.chosen(request.user)
    rows = (
        Escalation.objects.visible_to(request.user)
        .filter(pk__in=chosen)
        .select_related("order")
        .order_by("first_response_due_at", "pk")
    )
    outcomes = escalations.assign_many(rows, _actor(request), assignee, seen={pk: _seen(request, pk) for pk in chosen})
    done = [o for o in outcomes if o.ok]
    if done:
        messages.success(
            request,
            ngettext("%(n)d escalation is with %(who)s.", "%(n)d escalations are with %(who)s.", len(done))
            % {"n": len(done), "who": assignee.get_username()},
        )
    if len(done) < len(outcomes):
        messages.warning(request, _("Some escalations were not assigned; see why below."))
    request.session[BULK_RESULTS] = [asdict(o) for o in outcomes]
    return _back_to_queue(request)


def _visible_escalation(request, pk):
    return get_object_or_404(
        Escalation.objects.visible_to(request.user).select_related(
            "order__merchant", "order__provider", "case", "raised_by_organisation", "raised_by_user", "assignee"
        ),
        pk=pk,
    )


def _evidence(case) -> list[tuple[str, str]]:
    """A case's details as ``(label, value)`` pairs in the reader's language."""
    found = []
    for key, value in (case.details or {}).items():
        label, kind = EVIDENCE.get(key, (key, None))
        if value in ("", None):
            continue
        if kind == TIME:
            with suppress(TypeError, ValueError):
                value = date_format(timezone.localtime(datetime.fromisoformat(value)), "SHORT_DATETIME_FORMAT")
        elif kind is not None and value in kind.values:
            value = kind(value).label
        found.append((str(label), str(value)))
    return found


@login_required
def escalation_detail(request, pk, forms=None):
    """Everything an operator needs to decide without opening the order: the
    order's facts, why its flow is blocked, the case's evidence, the money at
    risk, the split group and its fees, the thread, and what they may do now."""
    escalation = _visible_escalation(request, pk)
    order, case = escalation.order, escalation.case
    org = request.user.organisation
    is_platform = org is not None and org.is_platform
    live = escalation.status in LIVE_ESCALATIONS
    actor = _actor(request)
    order_actions = []
    if is_platform and live:
        allowed = workflow.allowed_actions(order, actor)
        order_actions = [a for a in escalations.ORDER_ACTIONS if a in allowed]
    visible_orders = Order.objects.visible_to(request.user)
    group = list(visible_orders.split_group(order.trade_no, order.sku).order_by("pk"))
    in_group = len(group) > 1 or (case is not None and case.is_group_case)
    others = [c for c in live_cases_of(order) if case is None or c.pk != case.pk]
    operators = list(escalations.operators_of_platform()) if is_platform and live else []
    forms = forms or {}
    context = {
        "escalation": escalation,
        "order": order,
        "case": case,
        "evidence": _evidence(case) if case is not None else [],
        "instructions": rules.RULES[case.rule].instructions if case is not None else "",
        "blocked_report": (
            order.events.filter(action=Action.REPORT_BLOCKED)
            .select_related("actor_user", "actor_organisation")
            .order_by("-seq")
            .first()
            if order.flow_blocked
            else None
        ),
        "other_cases": others,
        "group": group if in_group else [],
        "fees": group_fees(order.trade_no, order.sku, orders=visible_orders) if in_group else None,
        "entries": escalation.entries.visible_to_organisation(org).select_related("author", "author_organisation"),
        "is_platform": is_platform,
        "live": live,
        "mine": escalation.assignee_id == request.user.pk,
        "assign_form": forms.get("assign", AssignForm(operators=operators)),
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
    """Take the escalation, or give it to another operator. From the queue
    ("Take it", which sends the query of the queue) the person stays on the
    queue; a refusal (someone took it meanwhile, it was closed) says why."""
    escalation = _visible_escalation(request, pk)
    if not _is_operator(request):
        raise Http404
    from_queue = "query" in request.POST
    operators = list(escalations.operators_of_platform())
    data = request.POST if "assignee" in request.POST and "take" not in request.POST else {"assignee": ME}
    form = AssignForm(data, operators=operators)
    if not form.is_valid():
        messages.error(request, _("Choose whom to assign it to."))
    else:
        assignee = form.chosen(request.user)
        try:
            escalations.assign(escalation, _actor(request), assignee, seen=_seen(request, pk))
        except errors.NotAllowed:
            raise Http404 from None
        except errors.WorkflowError as exc:
            messages.error(
                request,
                _("Escalation %(n)s (order %(order_no)s): %(reason)s")
                % {"n": escalation.pk, "order_no": escalation.order.order_no, "reason": exc.message},
            )
        else:
            if assignee.pk == request.user.pk:
                text = _("Escalation %(n)s (order %(order_no)s) is yours.")
            else:
                text = _("Escalation %(n)s (order %(order_no)s) is with %(who)s.")
            messages.success(
                request, text % {"n": escalation.pk, "order_no": escalation.order.order_no, "who": assignee}
            )
    if from_queue:
        return _back_to_queue(request)
    return redirect("risks:escalation", pk=pk)


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


@login_required
def replay_page(request, pk=None):
    """The platform's Replay page: the latest replay of the risk rules (or the
    one asked for), what it found, and the replays before it; how to run one
    when there is none. ``?export=csv`` or ``xlsx``: its losses as a file."""
    if not _is_operator(request):
        raise Http404
    run = get_object_or_404(ReplayRun, pk=pk) if pk is not None else ReplayRun.objects.first()
    wanted = format_of(request)
    if run is not None and wanted:
        headers = [label for _key, label in LOSS_COLUMNS]
        return download(f"replay-{run.pk}-losses", wanted, headers, findings.loss_file_rows(run))
    context = {"run": run, "recent": findings.recent(), "hours": findings.HEADLINE_HOURS}
    if run is not None:
        context |= {
            "period": findings.period(run),
            "took": findings.took(run.seconds),
            "thresholds": findings.thresholds(run),
            "headline": findings.headline(run),
            "chart": findings.lead_chart(run),
            "table": _paged(request, LossTable(findings.losses(run))),
        }
    return render(request, "risks/replay.html", context)


@login_required
def replay_rules(request, pk):
    """The numbers of a replay's chart, one row per rule, as CSV in the reader's language."""
    if not _is_operator(request):
        raise Http404
    chart = findings.lead_chart(get_object_or_404(ReplayRun, pk=pk))
    return download(f"replay-{pk}-rules", "csv", chart.csv_header(), chart.csv_rows())

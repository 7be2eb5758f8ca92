"""The web import's pages: who may use them, what a refused file says, and
that every job, progress and file stays inside its organisation."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import load_workbook

from orders import imports
from orders.choices import ImportStatus
from orders.models import ImportJob, Order
from tests.orders.test_imports import as_csv, as_xlsx, rows

pytestmark = pytest.mark.django_db


def upload(client, content, name="orders.csv"):
    return client.post(reverse("orders:import"), {"file": SimpleUploadedFile(name, content)})


def test_an_operator_uploads_a_file_and_follows_it_to_the_end(client, operator, merchant_org, provider_org):
    client.force_login(operator)
    table = rows(4)
    table[2]["amount"] = "lots"

    response = upload(client, as_csv(table))

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("orders:import-job", args=[job.pk])
    assert (job.status, job.total, job.organisation, job.created_by) == (
        ImportStatus.QUEUED,
        4,
        operator.organisation,
        operator,
    )
    page = client.get(response["Location"], headers={"HX-Request": "true"})
    assert b'hx-trigger="every 1s"' in page.content  # the page follows the job while it waits

    imports.run(job.pk)
    page = client.get(response["Location"]).content.decode()
    assert 'value="100"' in page and "hx-trigger" not in page.split('id="import-progress"')[1].split(">")[0]
    assert 'id="import-created">3<' in page and 'id="import-refused">1<' in page
    assert "<td>4</td><td>amount</td>" in page
    refused = client.get(reverse("orders:import-refused", args=[job.pk]))
    text = b"".join(refused.streaming_content).decode("utf-8-sig")
    assert refused["Content-Type"].startswith("text/csv") and "lots" in text and text.count("\n") == 2


def test_a_file_refused_whole_says_why_on_the_page_and_stores_nothing(client, operator):
    client.force_login(operator, backend=None)
    client.post(reverse("set-language"), {"language": "en"})

    response = upload(client, b"order_no,colour\nA,red\n")

    assert response.status_code == 400
    assert "Unknown column(s): “colour”" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_a_merchant_imports_its_own_and_sees_only_its_own_imports(
    client, merchant, merchant2, operator, merchant_org, merchant2_org, provider_org
):
    client.force_login(merchant)
    upload(client, as_xlsx(rows(2)), "mine.xlsx")
    mine = ImportJob.objects.get()
    imports.run(mine.pk)
    client.force_login(operator)
    upload(client, as_csv(rows(1, start=50)))
    theirs = ImportJob.objects.exclude(pk=mine.pk).get()

    client.force_login(merchant2)
    for name in ("orders:import-job", "orders:import-refused"):
        assert client.get(reverse(name, args=[mine.pk])).status_code == 404
    assert "mine.xlsx" not in client.get(reverse("orders:import")).content.decode()

    client.force_login(merchant)
    assert client.get(reverse("orders:import-job", args=[theirs.pk])).status_code == 404
    listed = client.get(reverse("orders:import")).content.decode()
    assert "mine.xlsx" in listed and "orders.csv" not in listed
    assert set(Order.objects.values_list("merchant__code", flat=True)) == {"M-1"}


def test_providers_have_no_import(client, provider):
    client.force_login(provider)
    assert client.get(reverse("orders:import")).status_code == 404
    assert client.get(reverse("orders:import-sample", args=["csv"])).status_code == 404


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_sample_file_has_the_headings_of_the_persons_language_and_imports(
    client, operator, merchant_org, provider_org, language
):
    operator.language = language
    operator.save()
    client.force_login(operator)

    response = client.get(reverse("orders:import-sample", args=["xlsx"]))

    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).active
    lines = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert lines[0] == imports.headings(language)
    job = imports.run(upload_and_get(client, response_bytes(lines)).pk)
    assert (job.created, job.refused) == (1, 0)


def response_bytes(lines):
    from openpyxl import Workbook

    workbook = Workbook()
    for line in lines:
        workbook.active.append(line)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def upload_and_get(client, content):
    upload(client, content, "sample.xlsx")
    return ImportJob.objects.latest("pk")


def test_an_unknown_sample_format_is_not_found(client, operator):
    client.force_login(operator)
    assert client.get(reverse("orders:import-sample", args=["pdf"])).status_code == 404


def test_a_file_over_the_limit_is_refused_before_it_is_read(client, operator, settings):
    settings.IMPORT_MAX_BYTES = 2048
    client.force_login(operator)
    response = upload(client, as_csv(rows(40)))
    assert response.status_code == 400 and not ImportJob.objects.exists()

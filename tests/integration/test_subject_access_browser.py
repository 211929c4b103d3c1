"""The subject-access report in a real browser (headless Debian chromium via Playwright)
and as a PDF rendered to PNG, after real sends between two gateways with their own
ledgers: it lists exactly the disclosures made and nothing of another child."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from gateway.api.auth import ApiKeys
from gateway.ledger.status import Direction, Status
from gateway.services import outbound
from tests.integration.gateways import make_settings, running, wait_for
from tests.integration.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, serving

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"  # screenshots to look at; not committed
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
UPN = "J332412014017"
# Jayden Clarke, Dudley's other child in the sample: never on Siobhán's report.
OTHER_CHILD = ("Jayden", "Clarke", "Y332410315022", "DY2 9PL", "DUD-2026-00418")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_the_report_page_and_its_pdf_show_exactly_the_disclosures_and_no_other_child(
    tmp_path: Path, vhost: str
) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests

    dudley = make_settings(tmp_path, ("332",), f"sqlite:///{tmp_path / 'dudley.db'}", vhost)
    others = make_settings(tmp_path, ("333", "336"), f"sqlite:///{tmp_path / 'others.db'}", vhost)
    keys = ApiKeys(dudley.api_keys_file)
    key = keys.issue("332")
    OUTPUT.mkdir(exist_ok=True)
    with running(others), running(dudley) as gw:
        with DUDLEY.open("rb") as stream:
            report = outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)
        row1 = next(o for o in report.outcomes if o.case_ref == "DUD-2026-00417")

        def delivered() -> bool:
            return all(
                gw.ledger.find(message_id=m, authority="332")[0].status == Status.DELIVERED
                for m in row1.message_ids
            )

        wait_for(delivered, what="Dudley row 1 delivered to 336 and 333")
        disclosed = {
            (r.message_id, r.recipient)
            for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=500)
            if r.case_ref == "DUD-2026-00417"
            and r.recipient != "332"
            and r.legal_basis in ("CONSENT", "SAFEGUARDING")
        }
        assert len(disclosed) >= 5
        with serving(gw, keys) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(
                    viewport={"width": 1400, "height": 1100},
                    extra_http_headers={"Authorization": f"Bearer {key}"},
                )
                page.goto(f"{base}/v1/children/{UPN}/report?format=html")
                heading = page.locator("h1").inner_text()
                assert "Dudley Metropolitan Borough Council" in heading
                assert "Siobhán O’Neill" in heading
                rows = page.locator("#disclosures tbody tr")
                assert rows.count() == len(disclosed)
                listed = {
                    (message_id, to)
                    for message_id, to in (
                        (
                            next(m for m, _ in disclosed if m in rows.nth(i).inner_text()),
                            rows.nth(i).locator("td").first.inner_text()[-4:-1],
                        )
                        for i in range(rows.count())
                    )
                }
                assert listed == disclosed
                text = page.locator("body").inner_text()
                assert [m for m in OTHER_CHILD if m in text] == []
                assert page.locator("#consent tbody tr").count() >= 1
                page.screenshot(path=str(OUTPUT / "subject-access-report.png"), full_page=True)
            finally:
                browser.close()
            pdf = httpx.get(
                f"{base}/v1/children/{UPN}/report",
                params={"format": "pdf"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf.content)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
        check=True,
    )
    png = tmp_path / "page-1.png"
    with Image.open(png) as image:
        width, height = image.size
        grey = image.convert("L")
        dark = sum(grey.histogram()[:128])
    assert width > height > 500  # A4 landscape at 80 dpi
    assert dark > 2000  # text was drawn, not a blank page
    png.replace(OUTPUT / "subject-access-report-pdf.png")
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Siobhán O’Neill" in text and UPN in text
    assert f"Who it was shared with ({len(disclosed)})" in text
    assert [m for m in OTHER_CHILD if m in text] == []

"""The saga console in a real headless Chromium against the real embedded stack: the list
renders, filters and updates live; an order's page draws its timeline; approve (after its
confirmation) completes the order; the API's refusal shows as its code and message; free text
and dead-letter payloads with HTML in them show as text and run nothing."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from order_service import orders_pb2 as pb
from order_service.topics import APPROVALS_TOPIC, REQUESTS_TOPIC
from ordersaga.console.backend import Backend

pytestmark = pytest.mark.timeout(240)  # the first test also waits for the session's stack
LARGE = 150_000  # cents: above the approval threshold (1000.00)
WAIT_S = 30

ROW_IDS = "return [...document.querySelectorAll('#orders tbody tr[data-order-id]')].map(r => r.dataset.orderId)"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>ann</b>'


def wait(driver, condition, timeout: float = WAIT_S, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message)


def text_of(driver, selector: str) -> str:
    return driver.execute_script("const n = document.querySelector(arguments[0]); return n ? n.textContent : ''",
                                 selector)


def assert_nothing_ran(driver) -> None:
    assert driver.execute_script("return window.__pwned") is None, "a script from the data ran"


def test_healthz_answers(console):
    with urllib.request.urlopen(f"{console}/healthz", timeout=5) as response:
        assert response.status == 200


def test_the_list_renders_filters_and_finds_by_id_or_customer(console, browser, saga, ids):
    sku, customer, other = ids("sku"), ids("c"), ids("c")
    small, large = ids("o"), ids("o")
    saga.set_stock(sku, 5)
    saga.place(small, customer, [(sku, 1, 100)])
    saga.place(large, other, [(sku, 1, LARGE)])
    saga.wait_for_status(small, "COMPLETED")
    saga.wait_for_status(large, "AWAITING_APPROVAL")

    browser.get(console + "/")
    wait(browser, lambda d: {small, large} <= set(d.execute_script(ROW_IDS)), message="both orders listed")
    Select(browser.find_element(By.ID, "status")).select_by_value("AWAITING_APPROVAL")
    wait(browser, lambda d: large in (rows := d.execute_script(ROW_IDS)) and small not in rows,
         message="the status filter keeps only orders awaiting approval")
    Select(browser.find_element(By.ID, "status")).select_by_value("")
    browser.find_element(By.ID, "search").send_keys(customer)
    wait(browser, lambda d: d.execute_script(ROW_IDS) == [small], message="search by customer finds its order")
    search = browser.find_element(By.ID, "search")
    search.clear()
    search.send_keys(large)
    wait(browser, lambda d: d.execute_script(ROW_IDS) == [large], message="search by order id finds it")
    assert "AWAITING_APPROVAL" in text_of(browser, f'#orders tr[data-order-id="{large}"]')
    saga.approve(large)  # leave nothing waiting
    saga.wait_for_status(large, "COMPLETED")


def test_a_new_order_appears_without_a_reload(console, browser, saga, ids):
    sku, customer = ids("sku"), ids("c")
    order_id = ids("o")
    saga.set_stock(sku, 5)
    browser.get(f"{console}/?q={customer}")
    wait(browser, lambda d: "No orders match." in text_of(d, "#orders tbody"))
    browser.execute_script("window.__sameDocument = true")
    saga.place(order_id, customer, [(sku, 1, 100)])
    wait(browser, lambda d: d.execute_script(ROW_IDS) == [order_id], message="the new order shows up")
    wait(browser, lambda d: "COMPLETED" in text_of(d, f'#orders tr[data-order-id="{order_id}"]'),
         message="and its status follows")
    assert browser.execute_script("return window.__sameDocument") is True, "the page was reloaded"


def test_an_orders_page_draws_its_steps_and_approve_after_confirmation_completes_it(console, browser, stack, saga,
                                                                                     ids):
    sku, customer, order_id = ids("sku"), ids("c"), ids("o")
    saga.set_stock(sku, 5)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")

    browser.get(f"{console}/orders/{order_id}")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button[data-action=approve]"),
         message="the approve button")
    bars = wait(browser, lambda d: d.execute_script(
        "const out = {}; document.querySelectorAll('#gantt rect.bar').forEach(r => "
        "{ out[r.querySelector('title').textContent.split(':')[0]] = r.getAttribute('x'); }); "
        "return Object.keys(out).length >= 3 ? out : null"), message="the steps over time")
    assert bars[f"reserve {sku}"] == bars["authorize"], f"reserve and authorize run side by side: {bars}"
    assert "approval" in bars
    assert "running" in text_of(browser, "#gantt"), "the approval wait is still running"
    zipkin = Backend(stack.run_dir).zipkin_url()
    if zipkin:  # a stack with a trace backend links the order's trace there
        assert browser.find_element(By.ID, "trace-link").get_attribute("href").startswith(zipkin + "/zipkin/")
    else:
        assert "no trace backend" in text_of(browser, "#facts")

    # Back: nothing is published.
    browser.find_element(By.CSS_SELECTOR, "button[data-action=approve]").click()
    wait(browser, lambda d: d.find_element(By.ID, "confirm").is_displayed())
    browser.find_element(By.ID, "confirm-no").click()
    assert saga.get(order_id)["status"] == "AWAITING_APPROVAL"

    # Confirm, as an approver whose name is HTML: it must show as text.
    browser.find_element(By.CSS_SELECTOR, "button[data-action=approve]").click()
    wait(browser, lambda d: d.find_element(By.ID, "confirm").is_displayed())
    browser.find_element(By.ID, "confirm-by").send_keys(HOSTILE)
    browser.find_element(By.ID, "confirm-yes").click()
    wait(browser, lambda d: "approve published on order-approvals" in text_of(d, "#notice"),
         message="the console says it published the decision")
    wait(browser, lambda d: "COMPLETED" in text_of(d, "#status"), message="the page follows the order to its end")
    assert saga.get(order_id)["status"] == "COMPLETED"
    timeline = text_of(browser, "#timeline")
    assert f"approve by {HOSTILE}" in timeline, timeline
    assert not browser.find_elements(By.CSS_SELECTOR, "#timeline b, #timeline img, #timeline script")
    assert_nothing_ran(browser)


def test_an_action_the_api_refuses_shows_the_apis_code_and_message(console, browser, saga, ids):
    sku, customer, order_id = ids("sku"), ids("c"), ids("o")
    saga.set_stock(sku, 5)
    # Holds the order in SHIPPING (below the 15 s step timeout), where the API refuses cancels.
    saga.set_faults("shipping-service", delay_seconds=12, methods=("CreateShipment",))
    try:
        saga.place(order_id, customer, [(sku, 1, 100)])
        saga.wait_for_status(order_id, "SHIPPING")
        browser.get(f"{console}/orders/{order_id}")
        wait(browser, lambda d: "SHIPPING" in text_of(d, "#status"))
        browser.find_element(By.CSS_SELECTOR, "button[data-action=cancel]").click()
        wait(browser, lambda d: d.find_element(By.ID, "confirm").is_displayed())
        browser.find_element(By.ID, "confirm-yes").click()
        shown = wait(browser, lambda d: "refused" in (t := text_of(d, "#notice")) and t, message="the refusal")
        with pytest.raises(Exception) as api:  # the same request, straight to the API
            saga.orders().CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=30)
    finally:
        saga.clear_faults("shipping-service")
    assert "FAILED_PRECONDITION (HTTP 409)" in shown, shown
    assert api.value.details() in shown, (shown, api.value.details())
    assert "Traceback" not in shown
    saga.wait_for_status(order_id, "COMPLETED")


def test_dead_letters_show_their_reasons_and_payloads_as_text(console, browser, saga, ids):
    marker = uuid.uuid4().hex[:12]
    unknown = ids("never-placed")
    decision = {"order_id": unknown, "decision": "approve", "approver": f"{marker} {HOSTILE}"}
    saga.publish(APPROVALS_TOPIC, json.dumps(decision).encode())
    request = {"order_id": f"bad-{marker}", "customer_id": "c", "items": [], "note": HOSTILE}
    saga.publish(REQUESTS_TOPIC, json.dumps(request).encode())

    browser.get(console + "/dead-letters")
    wait(browser, lambda d: marker in text_of(d, "#approvals") and f"bad-{marker}" in text_of(d, "#requests"),
         timeout=60, message="both dead letters listed")
    approvals, requests = text_of(browser, "#approvals"), text_of(browser, "#requests")
    assert f"NOT_FOUND: order {unknown} does not exist" in approvals and HOSTILE in approvals  # order-service's
    assert "INVALID_ARGUMENT: items" in requests  # order-service's reason
    assert "onerror" in requests  # the refused request as it came (daprd writes < as \u003c in JSON)
    assert not browser.find_elements(By.CSS_SELECTOR, "#approvals img, #approvals b, #requests img, #requests b")
    assert_nothing_ran(browser)


def test_the_list_pages_and_a_bulk_approval_runs_only_with_the_number_typed(console, browser, saga, ids):
    """Page size 3 (tests/console/conftest.py): five orders are two pages, newest first. The bulk
    panel acts on what the filters select: its preview says how many, and it runs only when that
    number is typed."""
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 10)
    saga.set_credit(customer, 10**9)
    orders = [ids("o") for _ in range(5)]
    for order_id in orders:
        saga.place(order_id, customer, [(sku, 1, LARGE)])
    for order_id in orders:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    newest_first = [o.order_id for o in saga.orders().ListOrders(
        pb.ListOrdersRequest(customer_id=customer, page_size=5), timeout=60).orders]
    assert sorted(newest_first) == sorted(orders)

    browser.get(f"{console}/?q={customer}")
    wait(browser, lambda d: d.execute_script(ROW_IDS) == newest_first[:3], message="the first page, newest first")
    assert "5 of" in text_of(browser, "#shown") and "(3 on this page)" in text_of(browser, "#shown")
    browser.find_element(By.ID, "next-page").click()
    wait(browser, lambda d: d.execute_script(ROW_IDS) == newest_first[3:], message="the second page")
    assert not browser.find_element(By.ID, "next-page").is_displayed()
    browser.find_element(By.ID, "first-page").click()
    wait(browser, lambda d: d.execute_script(ROW_IDS) == newest_first[:3], message="back to the newest")

    Select(browser.find_element(By.ID, "bulk-action")).select_by_value("approve")
    browser.find_element(By.ID, "bulk-preview").click()
    wait(browser, lambda d: "5 orders would be touched by approve" in text_of(d, "#bulk-says"),
         message="the preview counts every matching order, not the page")
    browser.find_element(By.ID, "bulk-count").send_keys("4")
    browser.find_element(By.ID, "bulk-run").click()
    wait(browser, lambda d: "Type 5" in text_of(d, "#bulk-progress"), message="a wrong count is refused")
    assert all(saga.get(order_id)["status"] == "AWAITING_APPROVAL" for order_id in orders)
    count = browser.find_element(By.ID, "bulk-count")
    count.clear()
    count.send_keys("5")
    browser.find_element(By.ID, "bulk-run").click()
    wait(browser, lambda d: "COMPLETED, 5/5 done: 5 changed, 0 skipped, 0 failed" in text_of(d, "#bulk-progress"),
         timeout=120, message="the bulk approval's progress to its end")
    for order_id in orders:
        saga.wait_for_status(order_id, "COMPLETED")


def test_chosen_dead_letters_are_sent_back_after_a_confirmation(console, browser, saga, ids):
    """An approval refused because its order did not exist yet: once the order waits, choosing
    the letter and confirming sends it back, and it approves the order."""
    order_id, sku = ids("o"), ids("sku")
    saga.approve(order_id, approver="early-console")
    browser.get(console + "/dead-letters")
    box = "#approvals input[type=checkbox]"
    letter_id = wait(browser, lambda d: d.execute_script(
        "const row = [...document.querySelectorAll('#approvals tr.letter')]"
        "  .find(r => r.textContent.includes(arguments[0]));"
        "return row ? row.querySelector('input[type=checkbox]').dataset.letter : null", order_id),
        timeout=60, message="the refused approval is listed")
    saga.set_stock(sku, 5)
    saga.place(order_id, ids("c"), [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    assert browser.find_element(By.ID, "redrive").get_attribute("disabled")
    browser.find_element(By.CSS_SELECTOR, f'{box}[data-letter="{letter_id}"]').click()
    wait(browser, lambda d: "1 chosen" in text_of(d, "#redrive-says"))
    browser.find_element(By.ID, "redrive").click()
    alert = WebDriverWait(browser, WAIT_S).until(lambda d: d.switch_to.alert)
    assert "Send 1 dead letters back" in alert.text
    alert.accept()
    wait(browser, lambda d: "1 of 1 sent back" in text_of(d, "#redrive-says"), message="the redrive's answer")
    order = saga.wait_for_status(order_id, "COMPLETED")
    assert any("early-console" in e["detail"] for e in order["timeline"])

"""payment-service's gRPC face: a hold on credit per order, then capture, void or refund.

Rows in its state store: `account|CUSTOMER` (limit, held, captured) and `payment|KEY` (the
ledger entry of that idempotency key). Every change is one ETag-conditioned transaction over
both (apphost.statestore), so no order is ever charged twice and credit is never overdrawn.
"""

from __future__ import annotations

import logging
from typing import Callable

from apphost.server import require
from apphost.statestore import OptimisticStore, Write
from payment_service import payment_pb2 as pb
from payment_service import payment_pb2_grpc as pb_grpc
from payment_service.ledger import Account, Payment

STORE = "payment-store"
log = logging.getLogger("payment_service")


def account_key(customer_id: str) -> str:
    return f"account|{customer_id}"


def payment_key(idempotency_key: str) -> str:
    return f"payment|{idempotency_key}"


# What the saga's undo of a payment does, whichever undo it calls (the refund of a capture or
# the void of the hold): the order takes no money. A payment still only authorized is voided,
# so a capture that lands after the undo (it timed out, and the service did it later) finds it
# VOIDED and takes nothing; a captured one is refunded. The saga undoes a timed-out capture
# with a refund and then voids the hold: without this, a capture landing between the two
# charged the customer of a FAILED order (issue 18, hole 1).
TAKE_NOTHING: dict[str, tuple[str, Callable]] = {
    "AUTHORIZED": ("VOIDED", Account.release_hold),
    "CAPTURED": ("REFUNDED", Account.refund),
}


def _credit(account: Account) -> pb.Credit:
    return pb.Credit(customer_id=account.customer_id, limit_cents=account.limit_cents, held_cents=account.held_cents,
                     captured_cents=account.captured_cents, available_cents=account.available_cents)


class PaymentServicer(pb_grpc.PaymentServiceServicer):
    def __init__(self, store: OptimisticStore, default_limit_cents: int):
        self._store = store
        self._default_limit = default_limit_cents

    def _account(self, customer_id: str) -> tuple[Account, str | None]:
        account, etag = self._store.read(account_key(customer_id), Account)
        return account or Account(customer_id=customer_id, limit_cents=self._default_limit), etag

    def _reply(self, payment: Payment, account: Account) -> pb.PaymentReply:
        approved = payment.state in ("AUTHORIZED", "CAPTURED")
        reason = "PAYMENT_DECLINED" if payment.state == "DECLINED" else ""
        return pb.PaymentReply(approved=approved, state=payment.state, reason=reason, credit=_credit(account))

    def Authorize(self, request: pb.AuthorizeRequest, context) -> pb.PaymentReply:
        require(context, request.idempotency_key, "idempotency_key is required")
        require(context, request.customer_id, "customer_id is required")
        require(context, request.amount_cents > 0, "amount_cents must be positive")
        key = payment_key(request.idempotency_key)

        def attempt() -> pb.PaymentReply:
            done, _ = self._store.read(key, Payment)
            account, etag = self._account(request.customer_id)
            if done is not None:  # a repeat, or a void that came first
                return self._reply(done, account)
            after = account.hold(request.amount_cents)
            if after is None:
                declined = Payment(customer_id=request.customer_id, amount_cents=request.amount_cents, state="DECLINED")
                self._store.transact(Write(key, declined, new=True))
                return self._reply(declined, account)
            held = Payment(customer_id=request.customer_id, amount_cents=request.amount_cents, state="AUTHORIZED")
            self._store.transact(Write(account_key(request.customer_id), after, etag=etag, new=etag is None),
                                 Write(key, held, new=True))
            return self._reply(held, after)

        reply = self._store.retrying(attempt)
        log.info("authorize key=%s customer=%s amount=%d -> %s", request.idempotency_key, request.customer_id,
                 request.amount_cents, reply.state)
        return reply

    def Capture(self, request: pb.PaymentRef, context) -> pb.PaymentReply:
        return self._transition(request, context, "capture", {"AUTHORIZED": ("CAPTURED", Account.capture)},
                                tombstone=None)

    def Void(self, request: pb.PaymentRef, context) -> pb.PaymentReply:
        return self._transition(request, context, "void", TAKE_NOTHING, tombstone="VOIDED")

    def Refund(self, request: pb.PaymentRef, context) -> pb.PaymentReply:
        return self._transition(request, context, "refund", TAKE_NOTHING, tombstone="VOIDED")

    def _transition(self, request: pb.PaymentRef, context, verb: str, moves: dict[str, tuple[str, Callable]],
                    tombstone: str | None):
        """Move the payment along `moves` (state -> new state and what it does to the account);
        any other state answers with the stored entry. An unknown key gets `tombstone`, if any."""
        require(context, request.idempotency_key, "idempotency_key is required")
        key = payment_key(request.idempotency_key)

        def attempt() -> pb.PaymentReply:
            done, done_etag = self._store.read(key, Payment)
            if done is None:
                if tombstone is None:
                    return pb.PaymentReply(approved=False, state="", reason="UNKNOWN_PAYMENT")
                self._store.transact(Write(key, Payment(customer_id="", amount_cents=0, state=tombstone), new=True))
                return pb.PaymentReply(approved=False, state=tombstone)
            account, etag = self._account(done.customer_id)
            if done.state not in moves:
                return self._reply(done, account)
            state, change = moves[done.state]
            after = change(account, done.amount_cents)
            moved = done.model_copy(update={"state": state})
            self._store.transact(Write(account_key(done.customer_id), after, etag=etag),
                                 Write(key, moved, etag=done_etag))
            return self._reply(moved, after)

        reply = self._store.retrying(attempt)
        log.info("%s key=%s -> %s", verb, request.idempotency_key, reply.state or "unknown")
        return reply

    def SetCredit(self, request: pb.SetCreditRequest, context) -> pb.Credit:
        require(context, request.customer_id, "customer_id is required")
        require(context, request.limit_cents >= 0, "limit_cents must not be negative")

        def attempt() -> pb.Credit:
            account, etag = self._account(request.customer_id)
            after = account.model_copy(update={"limit_cents": request.limit_cents})
            self._store.transact(Write(account_key(request.customer_id), after, etag=etag, new=etag is None))
            return _credit(after)

        return self._store.retrying(attempt)

    def GetCredit(self, request: pb.GetCreditRequest, context) -> pb.Credit:
        require(context, request.customer_id, "customer_id is required")
        return _credit(self._account(request.customer_id)[0])

"""Sagas built on the dapr_saga kit that are not ordersaga's own (see each folder's README)."""

# One image for the four ordersaga services. The Kubernetes Deployment picks the service with its
# command: `python -m order_service` (or inventory_service, payment_service, shipping_service);
# see deploy/helm/ordersaga. Dapr's sidecar runs beside it in the pod, from Dapr's own image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the service runtime: no extras (`stack` and `test` are local tooling), and only the
# packages the services run on. The services never import the `ordersaga` tooling package
# (tests/unit/test_import_direction.py), so it stays out of the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY apphost apphost
COPY order_service order_service
COPY inventory_service inventory_service
COPY payment_service payment_service
COPY shipping_service shipping_service
# The saga kit the order saga runs on: a package of its own in this repository, installed from here.
COPY dapr-saga dapr-saga
# pip still writes the tooling's console script (`ordersaga`); without its package it could only fail.
RUN pip install . ./dapr-saga && rm /usr/local/bin/ordersaga && rm -rf /src

# A numeric user, so the pod's runAsNonRoot can verify it (the chart sets the same uid).
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin ordersaga
USER 10001:10001
WORKDIR /tmp

# The gRPC app port the chart uses (APP_PORT).
EXPOSE 50051

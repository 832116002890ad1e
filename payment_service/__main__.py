"""payment-service's composition root: `python -m payment_service` (started by `ordersaga up`)."""

from ordersaga import apphost

APP_ID = "payment-service"


def main() -> None:
    apphost.run(APP_ID, apphost.new_app(), [])


if __name__ == "__main__":
    main()

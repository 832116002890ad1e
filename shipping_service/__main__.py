"""shipping-service's composition root: `python -m shipping_service` (started by `ordersaga up`)."""

from ordersaga import apphost

APP_ID = "shipping-service"


def main() -> None:
    apphost.run(APP_ID, apphost.new_app(), [])


if __name__ == "__main__":
    main()

"""Crashes on purpose (Agora analyser evaluation): a KeyError three frames deep."""

import json

ORDERS = json.loads('[{"id": 1, "total": 30}, {"id": 2, "amount": 45}]')


def order_total(order):
    return order["total"]


def revenue(orders):
    return sum(order_total(o) for o in orders)


def main():
    print("orders:", len(ORDERS))
    print("revenue:", revenue(ORDERS))


if __name__ == "__main__":
    main()

"""Invoice arithmetic with two bugs, for the Agora analyser evaluation."""


def line_total(quantity, unit_price):
    """Price of one invoice line."""
    return quantity * unit_price


def vat(amount, rate_percent):
    """VAT on an amount (bug: rounds down instead of to the nearest cent)."""
    return int(amount * rate_percent / 100)


def average_price(lines):
    """Average unit price over invoice lines (bug: no guard for an empty invoice)."""
    total = sum(price for _, price in lines)
    return total / len(lines)

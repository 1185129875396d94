from invoice import average_price, line_total, vat


def test_line_total():
    assert line_total(3, 250) == 750


def test_vat_rounds_to_nearest_cent():
    assert vat(1999, 19) == 380


def test_average_price():
    assert average_price([(1, 100), (2, 300)]) == 200


def test_average_price_of_empty_invoice():
    assert average_price([]) == 0

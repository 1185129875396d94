//! A tiny cart whose tests fail on purpose (Agora analyser evaluation): two of five tests fail,
//! one on an `assert_eq!`, one on a panic in the code under test.

/// Total price in cents, with a 10 % discount from 1000 cents on (the bug: the discount is
/// applied from 100 cents on).
pub fn total(prices: &[u64]) -> u64 {
    let sum: u64 = prices.iter().sum();
    if sum >= 100 {
        sum - sum / 10
    } else {
        sum
    }
}

/// The price of the item at `index`.
pub fn price_at(prices: &[u64], index: usize) -> u64 {
    prices[index]
}

/// Splits `total` evenly among `people`.
pub fn share(total: u64, people: u64) -> u64 {
    total / people
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cart_has_no_discount() {
        assert_eq!(total(&[10, 20]), 30);
    }

    #[test]
    fn discount_starts_at_ten_euros() {
        assert_eq!(total(&[200, 300]), 500);
    }

    #[test]
    fn first_item_price() {
        assert_eq!(price_at(&[5, 6], 0), 5);
    }

    #[test]
    fn item_after_the_last() {
        let prices = vec![5, 6];
        assert_eq!(price_at(&prices, 2), 0);
    }

    #[test]
    fn even_share() {
        assert_eq!(share(90, 3), 30);
    }
}

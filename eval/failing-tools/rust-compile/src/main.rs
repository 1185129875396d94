//! Fails to compile on purpose (Agora analyser evaluation): three errors, two warnings.
use std::collections::HashMap;

fn total(prices: &[u32]) -> u32 {
    let discount = (5);
    let sum: u32 = prices.iter().sum::<u32>() - discount;
    let label: String = sum;
    label.len() as u32
}

fn main() {
    let prices = vec![3, 4, 5];
    println!("{}", total(&prices));
    println!("{}", totl);
    prices.push_all(&[6]);
}

'use strict';

// Cart helpers with two bugs, for the Agora analyser evaluation.

function itemCount(cart) {
  return cart.items.length;
}

function shippingCity(order) {
  // Bug: orders picked up in store have no address.
  return order.address.city;
}

function total(cart) {
  // Bug: ignores quantities.
  return cart.items.reduce((sum, item) => sum + item.price, 0);
}

module.exports = { itemCount, shippingCity, total };

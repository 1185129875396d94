'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { itemCount, shippingCity, total } = require('../src/cart');

test('counts items', () => {
  assert.strictEqual(itemCount({ items: [{ price: 1 }, { price: 2 }] }), 2);
});

test('total uses quantities', () => {
  assert.strictEqual(total({ items: [{ price: 5, quantity: 3 }] }), 15);
});

test('shipping city of a delivered order', () => {
  assert.strictEqual(shippingCity({ address: { city: 'Lyon' } }), 'Lyon');
});

test('shipping city of a store pickup', () => {
  assert.strictEqual(shippingCity({ pickup: true }), null);
});

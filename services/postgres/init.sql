-- The shop's database: one role, one database, a table group per service, and seed data.
CREATE ROLE shop LOGIN PASSWORD :'app_password';
CREATE DATABASE shop OWNER shop;
\connect shop
SET ROLE shop;

-- users
CREATE TABLE users (
  id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text NOT NULL,
  password_hash text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());

-- catalog
CREATE TABLE products (
  sku text PRIMARY KEY, name text NOT NULL, description text NOT NULL, category text NOT NULL,
  price_cents integer NOT NULL CHECK (price_cents > 0));

-- inventory
CREATE TABLE stock (sku text PRIMARY KEY REFERENCES products, available integer NOT NULL CHECK (available >= 0),
  reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0));
CREATE TABLE reservations (id serial PRIMARY KEY, order_ref text NOT NULL, sku text NOT NULL REFERENCES products,
  qty integer NOT NULL, state text NOT NULL DEFAULT 'held');

-- orders
CREATE TABLE orders (id serial PRIMARY KEY, ref text UNIQUE NOT NULL, user_id integer NOT NULL REFERENCES users,
  total_cents integer NOT NULL, currency text NOT NULL, status text NOT NULL, payment_id text,
  failure text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_items (order_id integer NOT NULL REFERENCES orders, sku text NOT NULL, qty integer NOT NULL,
  price_cents integer NOT NULL);

-- shipping
CREATE TABLE shipments (id serial PRIMARY KEY, order_ref text UNIQUE NOT NULL, cost_cents integer NOT NULL,
  status text NOT NULL DEFAULT 'label_created');

-- notifications
CREATE TABLE notifications (id serial PRIMARY KEY, order_ref text NOT NULL, recipient text NOT NULL,
  template text NOT NULL, provider_message_id text, sent_at timestamptz NOT NULL DEFAULT now());

INSERT INTO products (sku, name, description, category, price_cents) VALUES
  ('mug', 'Stoneware mug', 'A heavy mug that keeps tea hot', 'tea', 1250),
  ('teapot', 'Cast-iron teapot', 'Brews six cups', 'tea', 3400),
  ('tea-sampler', 'Tea sampler', 'Twelve loose-leaf teas', 'tea', 1800),
  ('coffee-beans', 'Coffee beans', 'Single-origin, 500 g', 'coffee', 1600),
  ('cold-brew-kit', 'Cold brew kit', 'Jar, filter and beans', 'coffee', 2900),
  ('notebook', 'Dot-grid notebook', 'A5, 120 pages', 'stationery', 900),
  ('pen', 'Fine liner', 'Black, 0.4 mm', 'stationery', 350),
  ('tote-bag', 'Tote bag', 'Heavy canvas', 'accessories', 1500);
INSERT INTO stock (sku, available) SELECT sku, 10 FROM products;
UPDATE stock SET available = 3 WHERE sku = 'teapot';

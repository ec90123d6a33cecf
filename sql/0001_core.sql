-- Users, sessions and tenants.
CREATE TABLE users (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email         text NOT NULL,
  password_hash text NOT NULL,
  role          text NOT NULL CHECK (role IN ('admin', 'support', 'merchant', 'trader')),
  is_active     boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ux_users_email ON users (lower(email));

-- Opaque bearer tokens: only the SHA-256 of the token is stored.
CREATE TABLE sessions (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES users (id),
  token_hash  bytea NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz,
  ip_address  text
);
CREATE INDEX ix_sessions_user ON sessions (user_id);

-- Reference data.
CREATE TABLE fiat_currencies (
  code       text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
  name       text NOT NULL,
  is_active  boolean NOT NULL DEFAULT true
);
CREATE TABLE crypto_currencies (
  code       text PRIMARY KEY CHECK (code ~ '^[A-Z0-9]{2,10}$'),
  name       text NOT NULL,
  is_active  boolean NOT NULL DEFAULT true
);
CREATE TABLE banks (
  code       text PRIMARY KEY CHECK (code ~ '^[a-z0-9_]{2,32}$'),
  name       text NOT NULL,
  is_active  boolean NOT NULL DEFAULT true
);
CREATE TABLE payment_methods (
  code       text PRIMARY KEY CHECK (code ~ '^[a-z0-9_]{2,32}$'),
  name       text NOT NULL,
  is_active  boolean NOT NULL DEFAULT true
);
-- Every fetched or admin-set rate is kept; the current one is the newest per pair.
CREATE TABLE exchange_rates (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  fiat_code   text NOT NULL REFERENCES fiat_currencies (code),
  crypto_code text NOT NULL REFERENCES crypto_currencies (code),
  rate        numeric(24, 8) NOT NULL CHECK (rate > 0),
  source      text NOT NULL,
  fetched_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_exchange_rates_pair_fetched ON exchange_rates (fiat_code, crypto_code, fetched_at DESC);

INSERT INTO fiat_currencies (code, name) VALUES ('RUB', 'Russian ruble');
INSERT INTO crypto_currencies (code, name) VALUES ('USDT', 'Tether USD');
INSERT INTO payment_methods (code, name) VALUES ('card', 'Bank card'), ('sbp', 'Faster Payments System');
INSERT INTO banks (code, name) VALUES ('sber', 'Sberbank'), ('tinkoff', 'T-Bank'), ('alfa', 'Alfa-Bank');

CREATE TABLE merchants (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     bigint NOT NULL UNIQUE REFERENCES users (id),
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchant_stores (
  id                                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  merchant_id                        bigint NOT NULL REFERENCES merchants (id),
  name                               text NOT NULL,
  public_id                          text NOT NULL UNIQUE,
  -- The API key is "<prefix>.<secret>": the prefix finds the row, the secret's SHA-256 is compared in constant time.
  api_key_prefix                     text NOT NULL UNIQUE,
  api_key_hash                       bytea NOT NULL,
  secret_key                         text NOT NULL,
  callback_url                       text,
  processing_ttl_seconds             integer NOT NULL CHECK (processing_ttl_seconds BETWEEN 60 AND 604800),
  gateway_require_customer_id_param  boolean NOT NULL DEFAULT false,
  gateway_require_amount_param       boolean NOT NULL DEFAULT true,
  fiat_currency                      text NOT NULL REFERENCES fiat_currencies (code),
  crypto_currency                    text NOT NULL DEFAULT 'USDT' REFERENCES crypto_currencies (code),
  payin_commission_pct               numeric(7, 4) NOT NULL CHECK (payin_commission_pct >= 0 AND payin_commission_pct < 100),
  payout_commission_pct              numeric(7, 4) NOT NULL CHECK (payout_commission_pct >= 0 AND payout_commission_pct < 100),
  is_active                          boolean NOT NULL DEFAULT true,
  created_at                         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_merchant_stores_merchant ON merchant_stores (merchant_id);

CREATE TABLE traders (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id            bigint NOT NULL UNIQUE REFERENCES users (id),
  is_active          boolean NOT NULL DEFAULT true,
  in_work            boolean NOT NULL DEFAULT false,
  payin_reward_pct   numeric(7, 4) NOT NULL CHECK (payin_reward_pct >= 0 AND payin_reward_pct < 100),
  payout_reward_pct  numeric(7, 4) NOT NULL CHECK (payout_reward_pct >= 0 AND payout_reward_pct < 100),
  priority           integer NOT NULL DEFAULT 0,
  created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE requisites (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trader_id         bigint NOT NULL REFERENCES traders (id),
  payment_method    text NOT NULL REFERENCES payment_methods (code),
  bank_code         text NOT NULL REFERENCES banks (code),
  fiat_currency     text NOT NULL REFERENCES fiat_currencies (code),
  details           text NOT NULL CHECK (length(details) BETWEEN 4 AND 64),
  holder_name       text NOT NULL CHECK (length(holder_name) BETWEEN 1 AND 128),
  status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'blocked')),
  last_assigned_at  timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_requisites_trader ON requisites (trader_id);
CREATE INDEX ix_requisites_match ON requisites (payment_method, fiat_currency, bank_code) WHERE status = 'active';

CREATE TABLE full_requisites_settings (
  requisite_id            bigint PRIMARY KEY REFERENCES requisites (id) ON DELETE CASCADE,
  payin_enabled           boolean NOT NULL DEFAULT true,
  payout_enabled          boolean NOT NULL DEFAULT false,
  min_amount              numeric(20, 2) NOT NULL CHECK (min_amount > 0),
  max_amount              numeric(20, 2) NOT NULL,
  daily_turnover_limit    numeric(20, 2) NOT NULL CHECK (daily_turnover_limit > 0),
  monthly_turnover_limit  numeric(20, 2) NOT NULL CHECK (monthly_turnover_limit > 0),
  max_orders_per_day      integer NOT NULL CHECK (max_orders_per_day > 0),
  max_open_orders         integer NOT NULL CHECK (max_open_orders > 0),
  CHECK (max_amount >= min_amount)
);

-- Orders as the merchant sent them; the worker's queue.
CREATE TABLE incoming_orders (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  store_id            bigint NOT NULL REFERENCES merchant_stores (id),
  merchant_order_id   text NOT NULL CHECK (length(merchant_order_id) BETWEEN 1 AND 128),
  -- SHA-256 of the canonical request: a replay with a different body is a conflict.
  request_hash        bytea NOT NULL,
  direction           text NOT NULL CHECK (direction IN ('payin', 'payout')),
  amount              numeric(20, 2) NOT NULL CHECK (amount > 0),
  currency            text NOT NULL REFERENCES fiat_currencies (code),
  payment_method      text NOT NULL REFERENCES payment_methods (code),
  bank_code           text REFERENCES banks (code),
  customer_id         text,
  client_ip           text,
  return_url          text,
  callback_url        text,
  payout_destination  jsonb,
  gateway_token       text UNIQUE,
  status              text NOT NULL DEFAULT 'new'
                      CHECK (status IN ('new', 'retrying', 'assigned', 'failed', 'manual_review', 'cancelled')),
  retry_count         integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  last_attempt_at     timestamptz,
  next_attempt_at     timestamptz NOT NULL DEFAULT now(),
  failure_reason      text,
  assigned_order_id   bigint,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (store_id, merchant_order_id),
  CHECK ((direction = 'payout') = (payout_destination IS NOT NULL))
);
CREATE INDEX ix_incoming_orders_status_created ON incoming_orders (status, created_at);
-- Serves the worker's pick query: only due rows are in it, so it stays small.
CREATE INDEX ix_incoming_orders_due ON incoming_orders (next_attempt_at, id) WHERE status IN ('new', 'retrying');

CREATE TABLE order_history (
  id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  incoming_order_id        bigint NOT NULL UNIQUE REFERENCES incoming_orders (id),
  store_id                 bigint NOT NULL REFERENCES merchant_stores (id),
  trader_id                bigint NOT NULL REFERENCES traders (id),
  requisite_id             bigint NOT NULL REFERENCES requisites (id),
  direction                text NOT NULL CHECK (direction IN ('payin', 'payout')),
  amount_fiat              numeric(20, 2) NOT NULL CHECK (amount_fiat > 0),
  fiat_currency            text NOT NULL REFERENCES fiat_currencies (code),
  crypto_currency          text NOT NULL REFERENCES crypto_currencies (code),
  exchange_rate            numeric(24, 8) NOT NULL CHECK (exchange_rate > 0),
  amount_crypto            numeric(24, 6) NOT NULL CHECK (amount_crypto > 0),
  store_commission_pct     numeric(7, 4) NOT NULL,
  store_commission_crypto  numeric(24, 6) NOT NULL CHECK (store_commission_crypto >= 0),
  trader_reward_pct        numeric(7, 4) NOT NULL,
  trader_reward_crypto     numeric(24, 6) NOT NULL CHECK (trader_reward_crypto >= 0),
  status                   text NOT NULL DEFAULT 'assigned'
                           CHECK (status IN ('assigned', 'pending_trader_confirmation', 'completed', 'cancelled',
                                             'failed', 'dispute', 'requires_attention')),
  client_proof_key         text,
  trader_proof_key         text,
  status_reason            text,
  expires_at               timestamptz NOT NULL,
  completed_at             timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE incoming_orders ADD CONSTRAINT fk_incoming_orders_assigned
  FOREIGN KEY (assigned_order_id) REFERENCES order_history (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX ix_order_history_requisite_created ON order_history (requisite_id, created_at);
CREATE INDEX ix_order_history_trader_status ON order_history (trader_id, status, created_at DESC);
CREATE INDEX ix_order_history_store ON order_history (store_id, created_at DESC);
CREATE INDEX ix_order_history_open_expiry ON order_history (expires_at)
  WHERE status IN ('assigned', 'pending_trader_confirmation');

-- Balances. crypto amounts are numeric(24,6). Holds (frozen) never exceed the balance.
CREATE TABLE balance_stores (
  store_id    bigint PRIMARY KEY REFERENCES merchant_stores (id),
  currency    text NOT NULL DEFAULT 'USDT' REFERENCES crypto_currencies (code),
  balance     numeric(24, 6) NOT NULL DEFAULT 0,
  frozen      numeric(24, 6) NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (frozen >= 0 AND balance >= frozen)
);
CREATE TABLE balance_traders (
  trader_id   bigint PRIMARY KEY REFERENCES traders (id),
  currency    text NOT NULL DEFAULT 'USDT' REFERENCES crypto_currencies (code),
  balance     numeric(24, 6) NOT NULL DEFAULT 0,
  frozen      numeric(24, 6) NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (frozen >= 0 AND balance >= frozen)
);
-- The house: commission income. It may go negative when a reward exceeds a commission.
CREATE TABLE balance_platform (
  id          smallint PRIMARY KEY CHECK (id = 1),
  currency    text NOT NULL DEFAULT 'USDT' REFERENCES crypto_currencies (code),
  balance     numeric(24, 6) NOT NULL DEFAULT 0,
  frozen      numeric(24, 6) NOT NULL DEFAULT 0 CHECK (frozen = 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO balance_platform (id) VALUES (1);

-- One row per ledger movement. UNIQUE (order_id, kind) makes hold/post/void happen at most once per order.
CREATE TABLE ledger_transfers (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'hold', 'post', 'void')),
  order_id    bigint REFERENCES order_history (id),
  reason      text NOT NULL,
  created_by  bigint REFERENCES users (id),
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind IN ('hold', 'post', 'void')) = (order_id IS NOT NULL))
);
CREATE UNIQUE INDEX ux_ledger_transfers_order_kind ON ledger_transfers (order_id, kind) WHERE order_id IS NOT NULL;

CREATE TABLE balance_store_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  store_id        bigint NOT NULL REFERENCES merchant_stores (id),
  transfer_id     bigint NOT NULL REFERENCES ledger_transfers (id),
  order_id        bigint REFERENCES order_history (id),
  delta           numeric(24, 6) NOT NULL,
  frozen_delta    numeric(24, 6) NOT NULL,
  balance_after   numeric(24, 6) NOT NULL,
  frozen_after    numeric(24, 6) NOT NULL,
  reason          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_balance_store_history_store ON balance_store_history (store_id, id);

CREATE TABLE balance_trader_crypto_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trader_id       bigint NOT NULL REFERENCES traders (id),
  transfer_id     bigint NOT NULL REFERENCES ledger_transfers (id),
  order_id        bigint REFERENCES order_history (id),
  delta           numeric(24, 6) NOT NULL,
  frozen_delta    numeric(24, 6) NOT NULL,
  balance_after   numeric(24, 6) NOT NULL,
  frozen_after    numeric(24, 6) NOT NULL,
  reason          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_balance_trader_crypto_history_trader ON balance_trader_crypto_history (trader_id, id);

-- The fiat the trader received (PayIn) or sent (PayOut) off-platform, per completed order.
CREATE TABLE balance_trader_fiat_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trader_id       bigint NOT NULL REFERENCES traders (id),
  order_id        bigint NOT NULL UNIQUE REFERENCES order_history (id),
  currency        text NOT NULL REFERENCES fiat_currencies (code),
  delta           numeric(20, 2) NOT NULL,
  reason          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE balance_platform_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  transfer_id     bigint NOT NULL REFERENCES ledger_transfers (id),
  order_id        bigint REFERENCES order_history (id),
  delta           numeric(24, 6) NOT NULL,
  balance_after   numeric(24, 6) NOT NULL,
  reason          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- Deposits and withdrawals seen from outside: the counter-entry of every admin ledger entry.
CREATE TABLE balance_external_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  transfer_id     bigint NOT NULL REFERENCES ledger_transfers (id),
  delta           numeric(24, 6) NOT NULL,
  reason          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

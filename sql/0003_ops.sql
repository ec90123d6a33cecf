CREATE TABLE audit_logs (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at             timestamptz NOT NULL DEFAULT now(),
  action         text NOT NULL,
  user_id        bigint,
  user_role      text,
  target_entity  text,
  target_id      text,
  details        jsonb NOT NULL DEFAULT '{}'::jsonb,
  ip_address     text
);
CREATE INDEX ix_audit_logs_at ON audit_logs (at DESC, id DESC);
CREATE INDEX ix_audit_logs_target ON audit_logs (target_entity, target_id);
CREATE INDEX ix_audit_logs_action ON audit_logs (action, at DESC);

CREATE TABLE fraud_rules (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name            text NOT NULL UNIQUE,
  entity_kind     text NOT NULL CHECK (entity_kind IN ('ip', 'customer_id', 'store', 'requisite')),
  metric          text NOT NULL CHECK (metric IN ('count', 'sum')),
  window_seconds  integer NOT NULL CHECK (window_seconds BETWEEN 1 AND 2592000),
  threshold       numeric(20, 2) NOT NULL CHECK (threshold > 0),
  action          text NOT NULL CHECK (action IN ('deny', 'review')),
  is_active       boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now()
);
-- Defaults far above ordinary traffic: they catch scripted abuse, not customers.
INSERT INTO fraud_rules (name, entity_kind, metric, window_seconds, threshold, action) VALUES
  ('ip_orders_per_minute', 'ip', 'count', 60, 30, 'review'),
  ('customer_orders_per_hour', 'customer_id', 'count', 3600, 50, 'review'),
  ('customer_amount_per_day', 'customer_id', 'sum', 86400, 5000000, 'review');

CREATE TABLE fraud_lists (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  list_type    text NOT NULL CHECK (list_type IN ('black', 'white')),
  entity_kind  text NOT NULL CHECK (entity_kind IN ('ip', 'customer_id', 'card', 'user', 'store')),
  value        text NOT NULL CHECK (length(value) BETWEEN 1 AND 256),
  reason       text,
  expires_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (list_type, entity_kind, value)
);

CREATE TABLE fraud_checks (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  incoming_order_id  bigint NOT NULL REFERENCES incoming_orders (id),
  stage              text NOT NULL CHECK (stage IN ('incoming', 'confirmation')),
  result             text NOT NULL CHECK (result IN ('ALLOW', 'DENY', 'REQUIRE_MANUAL_REVIEW')),
  rule               text,
  details            jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_fraud_checks_order ON fraud_checks (incoming_order_id);

-- Callback outbox: written in the business transaction, delivered by a worker.
CREATE TABLE merchant_callbacks (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id           text NOT NULL UNIQUE,
  store_id           bigint NOT NULL REFERENCES merchant_stores (id),
  incoming_order_id  bigint NOT NULL REFERENCES incoming_orders (id),
  url                text,
  event              text NOT NULL,
  payload            jsonb NOT NULL,
  status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
  attempts           integer NOT NULL DEFAULT 0,
  next_attempt_at    timestamptz NOT NULL DEFAULT now(),
  last_status_code   integer,
  last_error         text,
  delivered_at       timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_merchant_callbacks_due ON merchant_callbacks (next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_merchant_callbacks_order ON merchant_callbacks (incoming_order_id);

CREATE TABLE idempotency_keys (
  store_id         bigint NOT NULL REFERENCES merchant_stores (id),
  key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_hash     bytea NOT NULL,
  response_status  integer,
  response_body    jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store_id, key)
);
CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at);

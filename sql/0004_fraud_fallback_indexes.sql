-- The fraud detector's SQL fallback (Redis down) counts recent orders per client IP and customer.
CREATE INDEX ix_incoming_orders_client_ip_created ON incoming_orders (client_ip, created_at) WHERE client_ip IS NOT NULL;
CREATE INDEX ix_incoming_orders_customer_created ON incoming_orders (customer_id, created_at) WHERE customer_id IS NOT NULL;

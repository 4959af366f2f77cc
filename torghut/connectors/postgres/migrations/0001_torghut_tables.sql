-- torghut-compatible tables (torghut-contracts.md section 6, V3 shape). IF NOT EXISTS so that a database
-- already holding torghut's own tables is adopted as is.

CREATE TABLE IF NOT EXISTS strategies (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(255) NOT NULL,
    description text,
    enabled boolean NOT NULL DEFAULT true,
    base_timeframe varchar(16) NOT NULL DEFAULT '1Min',
    universe_type varchar(64) NOT NULL DEFAULT 'static',
    universe_symbols jsonb,
    max_position_pct_equity numeric(20, 8),
    max_notional_per_trade numeric(20, 8),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_strategies_enabled ON strategies (enabled);
CREATE INDEX IF NOT EXISTS ix_strategies_name ON strategies (name);

CREATE TABLE IF NOT EXISTS trade_decisions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    strategy_id uuid NOT NULL REFERENCES strategies (id) ON DELETE CASCADE,
    alpaca_account_label varchar(64),
    symbol varchar(32) NOT NULL,
    timeframe varchar(16) NOT NULL,
    decision_json jsonb NOT NULL,
    rationale text,
    decision_hash varchar(64),
    status varchar(32) NOT NULL DEFAULT 'planned',
    executed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_trade_decisions_decision_hash ON trade_decisions (decision_hash);
CREATE INDEX IF NOT EXISTS ix_trade_decisions_strategy_id ON trade_decisions (strategy_id);
CREATE INDEX IF NOT EXISTS ix_trade_decisions_symbol_created_at ON trade_decisions (symbol, created_at);

CREATE TABLE IF NOT EXISTS executions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    trade_decision_id uuid REFERENCES trade_decisions (id) ON DELETE SET NULL,
    alpaca_account_label varchar(64),
    alpaca_order_id varchar(128),
    client_order_id varchar(128),
    symbol varchar(32) NOT NULL,
    side varchar(8) NOT NULL,
    order_type varchar(32),
    time_in_force varchar(16),
    submitted_qty numeric(20, 8) NOT NULL,
    filled_qty numeric(20, 8) NOT NULL DEFAULT 0,
    avg_fill_price numeric(20, 8),
    fee numeric(20, 8),
    status varchar(32) NOT NULL,
    execution_expected_adapter varchar(32),
    execution_actual_adapter varchar(32),
    execution_fallback_reason text,
    execution_fallback_count integer NOT NULL DEFAULT 0,
    raw_order jsonb,
    last_update_at timestamptz,
    order_feed_last_event_ts timestamptz,
    order_feed_last_seq bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_executions_alpaca_order_id ON executions (alpaca_order_id);
CREATE UNIQUE INDEX IF NOT EXISTS ix_executions_client_order_id ON executions (client_order_id);
CREATE INDEX IF NOT EXISTS ix_executions_trade_decision_id ON executions (trade_decision_id);

CREATE TABLE IF NOT EXISTS trade_cursor (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source varchar(64) NOT NULL,
    cursor_at timestamptz NOT NULL,
    cursor_seq bigint,
    cursor_symbol varchar(32),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_trade_cursor_source ON trade_cursor (source);

CREATE TABLE IF NOT EXISTS position_snapshots (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    alpaca_account_label varchar(64),
    as_of timestamptz NOT NULL,
    equity numeric(20, 8),
    cash numeric(20, 8),
    buying_power numeric(20, 8),
    positions jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_position_snapshots_as_of ON position_snapshots (as_of);

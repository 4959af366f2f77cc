-- The engine's own tables. Every row is keyed by a deterministic id (sha256 hex of canonical JSON unless
-- stated), so a batch re-delivered after a crash inserts nothing.

CREATE TABLE IF NOT EXISTS strategy_versions (
    strategy_id text NOT NULL,
    strategy_type text NOT NULL,
    version text NOT NULL,
    parameter_hash text NOT NULL,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (strategy_id, strategy_type, version, parameter_hash)
);

CREATE TABLE IF NOT EXISTS strategy_intents (
    id char(64) PRIMARY KEY,
    strategy_id text NOT NULL,
    symbol text NOT NULL,
    event_ts timestamptz NOT NULL,
    seq bigint NOT NULL,
    direction varchar(8) NOT NULL,
    confidence numeric NOT NULL,
    target_notional numeric NOT NULL,
    horizon text NOT NULL,
    strategy_type text NOT NULL,
    strategy_version text NOT NULL,
    parameter_hash text NOT NULL,
    feature_snapshot_hash text NOT NULL,
    input_position text,
    intent_json jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_strategy_intents_key ON strategy_intents (strategy_id, symbol, event_ts, seq);

CREATE TABLE IF NOT EXISTS symbol_intents (
    id char(64) PRIMARY KEY,
    symbol text NOT NULL,
    event_ts timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    seq bigint NOT NULL,
    horizon text NOT NULL,
    direction varchar(8) NOT NULL,
    confidence numeric NOT NULL,
    target_notional numeric NOT NULL,
    policy text NOT NULL,
    conflict boolean NOT NULL,
    source_strategy_ids jsonb NOT NULL,
    intent_json jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_symbol_intents_symbol_event_ts ON symbol_intents (symbol, event_ts);

CREATE TABLE IF NOT EXISTS portfolio_intents (
    id char(64) PRIMARY KEY,
    account text NOT NULL,
    symbol text NOT NULL,
    event_ts timestamptz NOT NULL,
    direction varchar(8) NOT NULL,
    net_target_qty numeric NOT NULL,
    requested_qty numeric NOT NULL,
    approved_qty numeric NOT NULL,
    price numeric,
    status text NOT NULL,
    regime_label text NOT NULL,
    capacity_bucket text NOT NULL,
    allocator_trace jsonb NOT NULL,
    intent_json jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_portfolio_intents_account_event_ts ON portfolio_intents (account, event_ts);

CREATE TABLE IF NOT EXISTS rejections (
    id char(64) PRIMARY KEY,
    decision_hash varchar(64) NOT NULL,
    stage text NOT NULL,
    symbol text NOT NULL,
    event_ts timestamptz NOT NULL,
    reasons text NOT NULL,
    gate_trace jsonb NOT NULL,
    rejection_json jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_rejections_decision_hash ON rejections (decision_hash);
CREATE INDEX IF NOT EXISTS ix_rejections_symbol_event_ts ON rejections (symbol, event_ts);

CREATE TABLE IF NOT EXISTS dead_letters (
    id char(64) PRIMARY KEY,
    stage text NOT NULL,
    reason text NOT NULL,
    source text,
    source_partition text,
    source_offset bigint,
    symbol text,
    event_ts timestamptz,
    raw jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_dead_letters_stage ON dead_letters (stage, created_at);

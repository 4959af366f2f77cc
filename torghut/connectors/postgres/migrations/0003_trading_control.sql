-- Runtime trading control (`torghut control ...`): the kill switch and trading switch an operator flips on a
-- running service. Before each order the firewall reads the row of its account and the row '*' (every
-- account); no row means the static configuration alone applies. A row can only make trading stricter:
-- kill_switch adds to TRADING_KILL_SWITCH_ENABLED, trading_enabled = false rejects every order.
-- version counts the writes of a row; the firewall records `label@version` of the rows it saw.

CREATE TABLE IF NOT EXISTS trading_control (
    account_label text PRIMARY KEY,
    kill_switch boolean NOT NULL DEFAULT false,
    trading_enabled boolean NOT NULL DEFAULT true,
    reason text,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL DEFAULT 1
);

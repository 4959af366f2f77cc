-- Which order carries out each intent, so that no intent is sent twice under two client order ids.
-- The client order id is the hash of the decision after sizing. In live mode the account stage sizes
-- against the broker's account, so a decision re-made after a restart (input re-read past the committed
-- cursor, or a resume from recovery) may be sized differently and get a new client order id. Before the
-- first order of an intent is sent, PersistedOrderGuard claims (account_label, intent_key) for its client
-- order id; a later order of the same intent under another id is refused (firewall reason
-- duplicate_intent) while the claimed order exists at the broker or in executions.
-- intent_key: the symbol intent's key (torghut.contracts.portfolio.symbol_intent_key), or the decision
-- hash of a legacy decision.

CREATE TABLE IF NOT EXISTS order_intents (
    account_label text NOT NULL,
    intent_key text NOT NULL,
    client_order_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_label, intent_key)
);

"""Asset-liability accounts (margin financing, spot margin): the asset table, the book of
held and owed columns with their ledgers, customer operations, the maintenance ratio,
forced liquidation, the daily settlement and the audit (docs/design.md)."""

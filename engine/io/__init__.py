"""Adapters between files and the engine: CSV / Parquet tables in, Parquet and snapshots out.

tables: read a CSV or Parquet file's columns, write Parquet atomically.
columns: Arrow columns to exact int64 columns (integers, decimals on a grid, symbols).
book_inputs: the accounts, positions and marks files, and the book they make.
settlement_inputs: the settlement's prices, funding and fees files.
snapshot: the whole book in one Arrow IPC file.
ledger_export: the ledger as an Arrow table.
"""

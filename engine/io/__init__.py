"""Adapters between files and the engine: CSV / Parquet tables in, Parquet reports out."""

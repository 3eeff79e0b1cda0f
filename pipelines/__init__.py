"""Prefect flows (ingest, train, retrain) and the MLflow registry helpers.

Importing this package imports nothing heavy; each module imports what it needs.
"""

"""Drift monitoring: a rolling window per model version, scored on a schedule against the
version's reference profile (features.drift_profile), with a sustained alarm that can start
the ``retrain`` deployment."""
